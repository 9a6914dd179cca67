"""The OpenAI Agents SDK against a live server: an `Agent` whose model is
`OpenAIResponsesModel` (on /v1/responses) or `OpenAIChatCompletionsModel` (on
/v1/chat/completions), both given an `AsyncOpenAI` client with `base_url=<server>/v1`, run by
`Runner.run` and `Runner.run_streamed`. The SDK's own tracing is off, so nothing leaves the
machine.

Each case checks what the SDK's user would see. A case the SDK cannot pass because of its own
bug is marked as a known issue (strict xfail: it fails the suite once the SDK is fixed, so the
mark goes); a case waiting for work on the service says which work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    RunResult,
    RunResultStreaming,
    function_tool,
    set_tracing_disabled,
)
from agents.items import ReasoningItem, ToolCallItem, ToolCallOutputItem
from aiohttp.test_utils import TestServer
from openai.types.responses import ResponseTextDeltaEvent
from openai.types.responses.response_output_item import McpCall
from pytest_aiohttp import AiohttpServer

from agent_service.models.offline import tokenize
from tests.clients.cases import (
    FAKE_ANSWER,
    MID_STREAM_FAILURES,
    WEATHER_REPORT,
    Wire,
    offline_answer,
    recorded_http,
    said_to_model,
)
from tests.clients.live import AGENT_TOOL_SCRIPT, CLIENT_TOOL_SCRIPT, Live, start_service
from tests.conftest import openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI

# The SDK sends its traces to OpenAI unless told not to.
set_tracing_disabled(True)

RESPONSES = "responses"
CHAT = "chat"
MODES = ("run", "streamed")


def kinds(*modes: str, **known: str) -> list[Any]:
    """Every model kind (each in every mode of `modes`), marked with its reason when it is in
    `known`: keys are `responses` or `chat`, optionally followed by `__<mode>`."""
    params = []
    for kind in (RESPONSES, CHAT):
        for mode in modes or (None,):
            reason = known.get(f"{kind}__{mode}") or known.get(kind)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            values = (kind,) if mode is None else (kind, mode)
            name = kind if mode is None else f"{kind}-{mode}"
            params.append(pytest.param(*values, marks=marks, id=name))
    return params


Connect = Callable[[Live, str], Model]


@pytest.fixture
async def connect() -> AsyncIterator[tuple[Connect, Wire]]:
    """Makes the SDK's model of a kind for a live server, as its docs say to for a server of
    one's own: an `AsyncOpenAI` client with the server's base URL."""
    async with recorded_http() as (http, wire):
        clients: list[openai.AsyncOpenAI] = []

        def model(server: Live, kind: str) -> Model:
            client = openai.AsyncOpenAI(
                base_url=f"{server.root}/v1", api_key="unused", max_retries=0, http_client=http
            )
            clients.append(client)
            if kind == RESPONSES:
                return OpenAIResponsesModel(model="agent", openai_client=client)
            return OpenAIChatCompletionsModel(model="agent", openai_client=client)

        yield model, wire


def agent_for(model: Model, **fields: Any) -> Agent[Any]:
    return Agent(name="assistant", model=model, **fields)


async def run(agent: Agent[Any], mode: str, question: Any, **options: Any) -> RunResult | Any:
    """The run's result, by `Runner.run` or by reading every event of `Runner.run_streamed`."""
    if mode == "run":
        return await Runner.run(agent, question, **options)
    result = Runner.run_streamed(agent, question, **options)
    async for _ in result.stream_events():
        pass
    return result


async def streamed_text(result: RunResultStreaming, deltas: list[str] | None = None) -> list[str]:
    """The text deltas of a streamed run, as its user renders them (into `deltas` as they
    come, when given)."""
    deltas = [] if deltas is None else deltas
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            deltas.append(event.data.delta)
    return deltas


# --- plain and streamed -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", kinds())
async def test_plain(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str
) -> None:
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    result = await Runner.run(agent_for(model(server, kind)), "Hello")
    assert result.final_output == offline_answer("Hello")


@pytest.mark.parametrize("kind", kinds())
async def test_streamed(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str
) -> None:
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    result = Runner.run_streamed(agent_for(model(server, kind)), "Hello")
    deltas = await streamed_text(result)
    assert len(deltas) > 1, "the text arrives in pieces"
    assert "".join(deltas) == offline_answer("Hello")
    assert result.final_output == offline_answer("Hello")


# --- tools ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_client_tool_loop(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """The model asks for the client's tool; the SDK runs it and sends the result back; the
    model answers."""
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return WEATHER_REPORT

    model, _ = connect
    server = await start_service(aiohttp_server, {}, script=CLIENT_TOOL_SCRIPT)
    agent = agent_for(model(server, kind), tools=[get_weather])
    result = await run(agent, mode, "Weather in Paris?")
    assert result.final_output == "Sunny in Paris."
    assert asked == ["Paris"], "the SDK ran the tool once"
    outputs = [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    assert outputs == [WEATHER_REPORT]
    assert len(result.raw_responses) == 2, "two model calls: the call, then the answer"


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_agent_tools(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """The agent runs its own calculator: the SDK gets the answer and is never asked to run
    a tool (it has none). On Responses it sees the call as one the server ran (an MCP call,
    with its output); Chat Completions has no item for that."""
    model, _ = connect
    server = await start_service(aiohttp_server, {}, script=AGENT_TOOL_SCRIPT)
    result = await run(agent_for(model(server, kind)), mode, "What is 2**10?")
    assert str(result.final_output).endswith("It is 1024.")
    assert len(result.raw_responses) == 1, "no round trip through the client"
    assert not [item for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    calls = [item.raw_item for item in result.new_items if isinstance(item, ToolCallItem)]
    if kind == CHAT:
        assert calls == []
    else:
        mcp_calls = [call for call in calls if isinstance(call, McpCall)]
        assert mcp_calls == calls
        assert [(call.name, call.output) for call in mcp_calls] == [("calculator", "1024")]


# --- usage, trace id --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_usage(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """The SDK reports the tokens the model counted (the offline model counts words). With
    the Chat Completions model, streamed usage must be asked for: the SDK asks only servers it
    knows to be OpenAI's."""
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    agent = agent_for(model(server, kind), model_settings=ModelSettings(include_usage=True))
    result = await run(agent, mode, "Count my words")
    usage = result.context_wrapper.usage
    prompt, reply = len(tokenize("Count my words")), len(tokenize(str(result.final_output)))
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, prompt, reply)
    assert usage.total_tokens == prompt + reply


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_trace_id(
    aiohttp_server: AiohttpServer,
    connect: tuple[Connect, Wire],
    tracing_env: dict[str, str],
    kind: str,
    mode: str,
) -> None:
    """The SDK's user can read the id of the answer's trace (to attach feedback to it): from
    the `x-mlflow-trace-id` header, seen by the HTTP client the SDK is given."""
    model, wire = connect
    server = await start_service(aiohttp_server, tracing_env)
    await run(agent_for(model(server, kind)), mode, "Hello")
    [trace_id] = wire.trace_ids
    trace = await server.trace(trace_id)
    assert trace.info.state == "OK"


# --- a conversation ---------------------------------------------------------------------------


@pytest.fixture
async def upstream_server(
    aiohttp_server: AiohttpServer, fake_openai: tuple[FakeOpenAI, TestServer], tmp_path: Path
) -> tuple[FakeOpenAI, Live]:
    """The service in front of a fake OpenAI-compatible model, keeping state in SQLite."""
    fake, model_server = fake_openai
    state = f"sqlite:///{tmp_path / 'state.db'}"
    server = await start_service(aiohttp_server, openai_env(model_server, STATE_STORE=state))
    return fake, server


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_multi_turn_resending_the_conversation(
    connect: tuple[Connect, Wire], upstream_server: tuple[FakeOpenAI, Live], kind: str, mode: str
) -> None:
    """The SDK's own way to go on: the last result's `to_input_list()` and the next message."""
    model, _ = connect
    fake, server = upstream_server
    agent = agent_for(model(server, kind))
    first = await run(agent, mode, "My name is Ada.")
    history = [*first.to_input_list(), {"role": "user", "content": "What is my name?"}]
    second = await run(agent, mode, history)
    assert first.final_output == second.final_output == FAKE_ANSWER
    assert said_to_model(fake) == [
        ("user", "My name is Ada."),
        ("assistant", FAKE_ANSWER),
        ("user", "What is my name?"),
    ], "the model sees the whole conversation, each turn once"


@pytest.mark.parametrize("mode", MODES)
async def test_multi_turn_by_previous_response_id_with_a_client_tool(
    connect: tuple[Connect, Wire], upstream_server: tuple[FakeOpenAI, Live], mode: str
) -> None:
    """With `store` (the server's default) the SDK continues from the last response's id,
    sending only what is new, also inside a run that goes through its own tool."""

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return WEATHER_REPORT

    model, wire = connect
    fake, server = upstream_server
    agent = agent_for(model(server, RESPONSES), tools=[get_weather])
    first = await run(agent, mode, "My name is Ada.")
    fake.script = [
        Behaviour(tokens=(), tool_calls=(("get_weather", '{"city": "Paris"}'),)),
        Behaviour(tokens=("Sunny,", " Ada.")),
    ]
    second = await run(
        agent, mode, "Weather in Paris?", previous_response_id=first.last_response_id
    )
    assert second.final_output == "Sunny, Ada."
    assert [message[0] for message in said_to_model(fake)] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
    ], "the model sees the whole conversation, each turn once, with the tool's result"
    assert said_to_model(fake)[:3] == [
        ("user", "My name is Ada."),
        ("assistant", FAKE_ANSWER),
        ("user", "Weather in Paris?"),
    ]
    assert said_to_model(fake)[4] == ("tool", WEATHER_REPORT)
    sent_inputs = [body["input"] for body in wire.sent]
    assert all(len(items) == 1 for items in sent_inputs), "the SDK sent only what is new"


# --- reasoning --------------------------------------------------------------------------------


def reasoning_text(item: ReasoningItem) -> str:
    """The reasoning an item carries, as its text (Open Responses) or its summary (OpenAI)."""
    raw = item.raw_item
    parts = raw.content or raw.summary
    return "".join(part.text for part in parts)


@pytest.mark.parametrize("mode", MODES)
async def test_reasoning_reaches_the_sdk_and_goes_back(
    connect: tuple[Connect, Wire], upstream_server: tuple[FakeOpenAI, Live], mode: str
) -> None:
    """A reasoning model's reasoning comes to the SDK as a reasoning item, and the SDK can send
    it back in the next turn's input."""
    model, _ = connect
    fake, server = upstream_server
    fake.behaviour = Behaviour(reasoning=("Two words", " suffice."))
    agent = agent_for(model(server, RESPONSES))
    first = await run(agent, mode, "Hi")
    assert first.final_output == FAKE_ANSWER
    [item] = [item for item in first.new_items if isinstance(item, ReasoningItem)]
    assert reasoning_text(item) == "Two words suffice."
    history = [*first.to_input_list(), {"role": "user", "content": "Again?"}]
    second = await run(agent, mode, history)
    assert second.final_output == FAKE_ANSWER


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_bad_request(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """An out-of-range setting: the SDK raises the 400 with our message."""
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    agent = agent_for(model(server, kind), model_settings=ModelSettings(temperature=5))
    with pytest.raises(openai.BadRequestError) as raised:
        await run(agent, mode, "Hi")
    assert raised.value.status_code == 400
    assert "$.temperature" in raised.value.message


@pytest.mark.parametrize("kind", kinds())
async def test_upstream_fails(
    aiohttp_server: AiohttpServer,
    connect: tuple[Connect, Wire],
    fake_openai: tuple[FakeOpenAI, TestServer],
    kind: str,
) -> None:
    """The model endpoint fails a (non-streamed) call: `Runner.run` raises our error."""
    model, _ = connect
    fake, model_server = fake_openai
    fake.behaviour = Behaviour(status=500)
    server = await start_service(aiohttp_server, openai_env(model_server))
    with pytest.raises(openai.APIStatusError) as raised:
        await Runner.run(agent_for(model(server, kind)), "Hi")
    assert raised.value.status_code == 502
    assert "The model endpoint answered HTTP 500" in raised.value.message


@pytest.mark.parametrize("failure", list(MID_STREAM_FAILURES))
@pytest.mark.parametrize("kind", kinds())
async def test_upstream_fails_mid_stream(
    aiohttp_server: AiohttpServer,
    connect: tuple[Connect, Wire],
    fake_openai: tuple[FakeOpenAI, TestServer],
    kind: str,
    failure: str,
) -> None:
    """The model endpoint fails after two tokens (drops the connection, or ends the body as if
    complete): the SDK's user gets those two tokens, then an exception with our message, never
    a run that ends as if the answer were complete. (The OpenAI SDK under it raises APIError on
    the error frame of a Chat Completions stream, and on the error event of a Responses stream
    thanks to its nested `error` object.)"""
    model, _ = connect
    fake, model_server = fake_openai
    fake.behaviour, message = MID_STREAM_FAILURES[failure]
    server = await start_service(aiohttp_server, openai_env(model_server))
    deltas: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        await streamed_text(Runner.run_streamed(agent_for(model(server, kind)), "Hi"), deltas)
    assert message in str(raised.value)
    assert "Connection error" not in str(raised.value), "no exception text reaches clients"
    assert "".join(deltas) == "Hello from"
