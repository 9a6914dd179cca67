"""LangChain against a live server: langchain-openai's `ChatOpenAI` with
`base_url=<server>/v1`, on /v1/chat/completions and (`use_responses_api=True`) on
/v1/responses, invoked and streamed; and LangChain's `create_agent` with that model and a tool
of its own.

Each case checks what LangChain's user would see. A case LangChain cannot pass because of its
own bug is marked as a known issue (strict xfail: it fails the suite once LangChain is fixed,
so the mark goes); a case waiting for work on the service says which work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from langchain.agents import create_agent
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pytest_aiohttp import AiohttpServer

from agent_service.models.offline import tokenize
from tests.clients.cases import (
    FAKE_ANSWER,
    MID_STREAM_FAILURES,
    TRACE_ID_HEADER,
    WEATHER_REPORT,
    Wire,
    offline_answer,
    recorded_http,
    said_to_model,
)
from tests.clients.live import AGENT_TOOL_SCRIPT, CLIENT_TOOL_SCRIPT, Live, start_service
from tests.conftest import openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI

RESPONSES = "responses"
CHAT = "chat"
MODES = ("invoke", "stream")


def kinds(*modes: str, **known: str) -> list[Any]:
    """Every API (each in every mode of `modes`), marked with its reason when it is in `known`:
    keys are `responses` or `chat`, optionally followed by `__<mode>`."""
    params = []
    for kind in (RESPONSES, CHAT):
        for mode in modes or (None,):
            reason = known.get(f"{kind}__{mode}") or known.get(kind)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            values = (kind,) if mode is None else (kind, mode)
            name = kind if mode is None else f"{kind}-{mode}"
            params.append(pytest.param(*values, marks=marks, id=name))
    return params


Connect = Callable[..., ChatOpenAI]


@pytest.fixture
async def connect() -> AsyncIterator[tuple[Connect, Wire]]:
    """Makes `ChatOpenAI` for a live server, as a LangChain user points it at any
    OpenAI-compatible server: `base_url`, and `stream_usage=True` (LangChain asks for streamed
    usage by itself only from OpenAI's own servers)."""
    async with recorded_http() as (http, wire):

        def model(server: Live, kind: str, **options: Any) -> ChatOpenAI:
            return ChatOpenAI(
                model="agent",
                base_url=f"{server.root}/v1",
                api_key="unused",  # type: ignore[arg-type]
                max_retries=0,
                use_responses_api=kind == RESPONSES,
                stream_usage=True,
                http_async_client=http,
                **options,
            )

        yield model, wire


async def ask(model: Any, mode: str, messages: Any) -> AIMessage | AIMessageChunk:
    """The answer, by `ainvoke` or by adding up the chunks of `astream` as LangChain's docs
    show."""
    if mode == "invoke":
        answer: AIMessage = await model.ainvoke(messages)
        return answer
    total: AIMessageChunk | None = None
    async for chunk in model.astream(messages):
        total = chunk if total is None else total + chunk
    assert total is not None
    return total


async def read_text(chunks: AsyncIterator[AIMessageChunk], pieces: list[str]) -> None:
    """Reads a stream as its user renders it: each chunk's text into `pieces` as it comes."""
    async for chunk in chunks:
        pieces.append(chunk.text)  # noqa: PERF401 (kept as they come, for a stream that fails)


# --- plain and streamed -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", kinds())
async def test_invoke(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str
) -> None:
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    answer = await model(server, kind).ainvoke("Hello")
    assert answer.text == offline_answer("Hello")
    assert answer.tool_calls == []


@pytest.mark.parametrize("kind", kinds())
async def test_stream(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str
) -> None:
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    pieces = [chunk.text async for chunk in model(server, kind).astream("Hello")]
    assert len([piece for piece in pieces if piece]) > 1, "the text arrives in pieces"
    assert "".join(pieces) == offline_answer("Hello")


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


CONVERSATION = [
    ("user", "My name is Ada."),
    ("assistant", FAKE_ANSWER),
    ("user", "What is my name?"),
]


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_multi_turn(
    connect: tuple[Connect, Wire], upstream_server: tuple[FakeOpenAI, Live], kind: str, mode: str
) -> None:
    """LangChain's way: the whole conversation as messages, each turn."""
    model, _ = connect
    fake, server = upstream_server
    chat = model(server, kind)
    history: list[BaseMessage] = [HumanMessage("My name is Ada.")]
    history.append(await ask(chat, mode, history))
    history.append(HumanMessage("What is my name?"))
    second = await ask(chat, mode, history)
    assert second.text == FAKE_ANSWER
    assert said_to_model(fake) == CONVERSATION, "the model sees the whole conversation, once"


@pytest.mark.parametrize("mode", MODES)
async def test_multi_turn_by_previous_response_id(
    connect: tuple[Connect, Wire], upstream_server: tuple[FakeOpenAI, Live], mode: str
) -> None:
    """With `use_previous_response_id=True`, LangChain sends only the messages after its last
    answer, with that answer's id: the server holds the rest."""
    model, wire = connect
    fake, server = upstream_server
    chat = model(server, RESPONSES, use_previous_response_id=True)
    history: list[BaseMessage] = [HumanMessage("My name is Ada.")]
    history.append(await ask(chat, mode, history))
    history.append(HumanMessage("What is my name?"))
    second = await ask(chat, mode, history)
    assert second.text == FAKE_ANSWER
    assert said_to_model(fake) == CONVERSATION
    last = wire.sent[-1]
    assert last["previous_response_id"] == history[1].response_metadata["id"]
    assert len(last["input"]) == 1, "only the new message was sent"


# --- tools ------------------------------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return WEATHER_REPORT if city == "Paris" else "Unknown city."


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_client_tool_loop(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """`bind_tools`: the model asks for the client's tool; the client runs it and sends the
    result back; the model answers."""
    model, _ = connect
    server = await start_service(aiohttp_server, {}, script=CLIENT_TOOL_SCRIPT)
    chat = model(server, kind).bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("Weather in Paris?")]
    call = await ask(chat, mode, history)
    [tool_call] = call.tool_calls
    assert (tool_call["name"], tool_call["args"]) == ("get_weather", {"city": "Paris"})
    result = await get_weather.ainvoke(tool_call)
    assert isinstance(result, ToolMessage)
    history += [call, result]
    answer = await ask(chat, mode, history)
    assert answer.text == "Sunny in Paris."
    assert answer.tool_calls == []


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_agent_tools(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """The agent runs its own calculator: the client gets the answer, with no tool call to
    run. On Responses it sees the call as one the server ran, with its result (LangChain's
    server_tool_call and server_tool_result blocks); Chat Completions has no item for that."""
    model, _ = connect
    server = await start_service(aiohttp_server, {}, script=AGENT_TOOL_SCRIPT)
    answer = await ask(model(server, kind), mode, "What is 2**10?")
    assert answer.text.startswith("Let me compute.")
    assert answer.text.endswith("It is 1024.")
    assert answer.tool_calls == []
    server_side = [
        block for block in answer.content_blocks if block["type"].startswith("server_tool")
    ]
    if kind == CHAT:
        assert server_side == []
    else:
        call, result = server_side
        assert call["type"] == "server_tool_call"
        assert call.get("extras", {}).get("tool_name") == "calculator"
        assert call.get("args") == {"expression": "2**10"}
        assert result["type"] == "server_tool_result"
        assert result.get("output") == "1024"


# --- usage, trace id --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_usage(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """LangChain reports the tokens the model counted (the offline model counts words)."""
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    answer = await ask(model(server, kind), mode, "Count my words")
    prompt, reply = len(tokenize("Count my words")), len(tokenize(answer.text))
    assert answer.usage_metadata is not None
    usage = answer.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"]) == (prompt, reply)
    assert usage["total_tokens"] == prompt + reply


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_trace_id(
    aiohttp_server: AiohttpServer,
    connect: tuple[Connect, Wire],
    tracing_env: dict[str, str],
    kind: str,
    mode: str,
) -> None:
    """LangChain's user can read the id of the answer's trace (to attach feedback to it): with
    `include_response_headers=True`, the answer's `response_metadata["headers"]` has it."""
    model, _ = connect
    server = await start_service(aiohttp_server, tracing_env)
    answer = await ask(model(server, kind, include_response_headers=True), mode, "Hello")
    trace_id = answer.response_metadata["headers"][TRACE_ID_HEADER]
    trace = await server.trace(trace_id)
    assert trace.info.state == "OK"


# --- reasoning --------------------------------------------------------------------------------


def reasoning_of(answer: AIMessage | AIMessageChunk) -> str:
    """The reasoning in an answer, as LangChain's standard content blocks show it. (LangChain
    reads a reasoning item's summary, and streamed `response.reasoning_summary_*` events; it
    passes a reasoning item's `content` on untouched and ignores `response.reasoning_text.*`
    events: a server that sends reasoning only as content shows LangChain users none.)"""
    blocks = answer.content_blocks
    return "".join(
        str(block.get("reasoning", "")) for block in blocks if block["type"] == "reasoning"
    )


@pytest.mark.parametrize("mode", MODES)
async def test_reasoning_reaches_langchain_and_goes_back(
    connect: tuple[Connect, Wire], upstream_server: tuple[FakeOpenAI, Live], mode: str
) -> None:
    """On Responses, a reasoning model's reasoning comes to LangChain as reasoning content,
    and the answer holding it can be sent back in the next turn."""
    model, _ = connect
    fake, server = upstream_server
    fake.behaviour = Behaviour(reasoning=("Two words", " suffice."))
    chat = model(server, RESPONSES)
    history: list[BaseMessage] = [HumanMessage("Hi")]
    first = await ask(chat, mode, history)
    assert first.text == FAKE_ANSWER
    assert reasoning_of(first) == "Two words suffice."
    history += [first, HumanMessage("Again?")]
    second = await ask(chat, mode, history)
    assert second.text == FAKE_ANSWER


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_bad_request(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """An out-of-range setting: LangChain raises the 400 with our message."""
    model, _ = connect
    server = await start_service(aiohttp_server, {})
    with pytest.raises(openai.BadRequestError) as raised:
        await ask(model(server, kind, temperature=5), mode, "Hi")
    assert raised.value.status_code == 400
    assert "$.temperature" in raised.value.message


@pytest.mark.parametrize("kind", kinds())
async def test_upstream_fails(
    aiohttp_server: AiohttpServer,
    connect: tuple[Connect, Wire],
    fake_openai: tuple[FakeOpenAI, TestServer],
    kind: str,
) -> None:
    """The model endpoint fails a (non-streamed) call: LangChain raises our error."""
    model, _ = connect
    fake, model_server = fake_openai
    fake.behaviour = Behaviour(status=500)
    server = await start_service(aiohttp_server, openai_env(model_server))
    with pytest.raises(openai.APIStatusError) as raised:
        await model(server, kind).ainvoke("Hi")
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
    complete): LangChain's user gets those two tokens, then an exception with our message,
    never an answer that ends as if it were complete."""
    model, _ = connect
    fake, model_server = fake_openai
    fake.behaviour, message = MID_STREAM_FAILURES[failure]
    server = await start_service(aiohttp_server, openai_env(model_server))
    pieces: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        await read_text(model(server, kind).astream("Hi"), pieces)
    assert message in str(raised.value)
    assert "Connection error" not in str(raised.value), "no exception text reaches clients"
    assert "".join(pieces) == "Hello from"


# --- create_agent -----------------------------------------------------------------------------


async def run_agent(agent: Any, mode: str, question: str) -> list[BaseMessage]:
    """The agent's messages at the end, by `ainvoke` or by `astream` of its state values."""
    state = {"messages": [HumanMessage(question)]}
    if mode == "invoke":
        final = await agent.ainvoke(state)
    else:
        states = [values async for values in agent.astream(state, stream_mode="values")]
        final = states[-1]
    messages: list[BaseMessage] = final["messages"]
    return messages


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_create_agent_with_a_tool(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """LangChain's `create_agent` with our server as its model and a tool of its own: the
    agent runs the tool the model asks for, and the model answers with its result."""
    model, _ = connect
    server = await start_service(aiohttp_server, {}, script=CLIENT_TOOL_SCRIPT)
    agent = create_agent(model=model(server, kind), tools=[get_weather])
    messages = await run_agent(agent, mode, "Weather in Paris?")
    kinds_seen = [message.type for message in messages]
    assert kinds_seen == ["human", "ai", "tool", "ai"]
    assert messages[2].text == WEATHER_REPORT
    assert messages[-1].text == "Sunny in Paris."


@pytest.mark.parametrize(("kind", "mode"), kinds(*MODES))
async def test_create_agent_and_the_agents_own_tools(
    aiohttp_server: AiohttpServer, connect: tuple[Connect, Wire], kind: str, mode: str
) -> None:
    """Our agent runs its calculator inside one model call of `create_agent`'s agent, which
    neither runs a tool nor calls the model again."""
    model, wire = connect
    server = await start_service(aiohttp_server, {}, script=AGENT_TOOL_SCRIPT)
    agent = create_agent(model=model(server, kind), tools=[get_weather])
    messages = await run_agent(agent, mode, "What is 2**10?")
    assert [message.type for message in messages] == ["human", "ai"]
    assert messages[-1].text.endswith("It is 1024.")
    assert len(wire.sent) == 1, "one model call"
