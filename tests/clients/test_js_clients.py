"""The Vercel AI SDK (`ai`) against a live server, through Node.js: `@ai-sdk/openai` on the
OpenAI routes (Responses and Chat Completions), and `@databricks/ai-sdk-provider` on
`/invocations` configured the way the Databricks chatbot configures it (Responses, and
ChatAgent).

Each case runs the real client (tests/clients/js, pinned by its package-lock.json) and checks
what its user would see. A case a client cannot pass because of its own bug is marked as a
known issue (strict xfail: it fails the suite once the client is fixed, so the mark goes);
a case waiting for work on the service says which work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from agent_service.models.offline import tokenize
from tests.clients.cases import offline_answer, said_to_model
from tests.clients.live import (
    AGENT_TOOL_SCRIPT,
    CLIENT_TOOL_SCRIPT,
    Live,
    start_service,
)
from tests.clients.node import drive
from tests.fakes.openai_server import Behaviour, FakeOpenAI

OPENAI_RESPONSES = "openai-responses"
OPENAI_CHAT = "openai-chat"
DATABRICKS_RESPONSES = "databricks-responses"
DATABRICKS_CHAT_AGENT = "databricks-chat-agent"
CLIENTS = (OPENAI_RESPONSES, OPENAI_CHAT, DATABRICKS_RESPONSES, DATABRICKS_CHAT_AGENT)
# What `/invocations` must speak for each client (the OpenAI clients use their own routes).
TASK = {
    OPENAI_RESPONSES: "agent/v1/responses",
    OPENAI_CHAT: "agent/v1/chat",
    DATABRICKS_RESPONSES: "agent/v1/responses",
    DATABRICKS_CHAT_AGENT: "agent/v2/chat",
}

# --- what is not ours to fix, or not fixed yet ------------------------------------------------

DATABRICKS_STREAMED_USAGE = (
    "@databricks/ai-sdk-provider 0.5.1 reads streamed usage only from an event it names "
    "'responses.completed' (the protocol's event is 'response.completed'), so the usage of a "
    "streamed answer is always zero"
)
DATABRICKS_GENERATE_IGNORES_REMOTE_TOOLS = (
    "@databricks/ai-sdk-provider 0.5.1 ignores useRemoteToolCalling when not streaming: the "
    "agent's tool calls reach the AI SDK as calls for the client to run, which records a "
    "tool error for a tool it does not have"
)
DATABRICKS_FINISHES_FAILED_STREAMS = (
    "@databricks/ai-sdk-provider 0.5.1 passes the stream's error event on but still finishes "
    "the answer with reason 'stop'"
)
CHAT_AGENT_FINISH_OTHER = (
    "@databricks/ai-sdk-provider 0.5.1 finishes every streamed ChatAgent answer with reason "
    "'other', whatever the server's finish_reason"
)
CHAT_AGENT_NO_USAGE = (
    "@databricks/ai-sdk-provider 0.5.1 reports zero usage for ChatAgent answers whatever "
    "the server sends"
)
CHAT_AGENT_NO_CLIENT_TOOLS = (
    "@databricks/ai-sdk-provider 0.5.1 never sends the client's tools to a ChatAgent "
    "endpoint and marks every tool call as run by the server"
)
CHAT_AGENT_GENERATE_HIDES_IDS = (
    "@databricks/ai-sdk-provider 0.5.1 returns neither the headers nor the body of a "
    "non-streamed ChatAgent answer, so its trace id cannot be read"
)


def clients(*modes: str, **known: str) -> list[Any]:
    """Every client (each in every mode of `modes`), marked with its reason when it is in
    `known`: keys are client names with `_` for `-`, optionally followed by `__<mode>`."""
    params = []
    for client in CLIENTS:
        key = client.replace("-", "_")
        for mode in modes or (None,):
            reason = known.get(f"{key}__{mode}") or known.get(key)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            values = (client,) if mode is None else (client, mode)
            name = client if mode is None else f"{client}-{mode}"
            params.append(pytest.param(*values, marks=marks, id=name))
    return params


async def live(aiohttp_server: AiohttpServer, client: str, script: Any = None, **env: str) -> Live:
    return await start_service(aiohttp_server, {"AGENT_TASK": TASK[client], **env}, script=script)


def case(client: str, server: Live, mode: str, *turns: str, **fields: Any) -> dict[str, Any]:
    return {"client": client, "root": server.root, "mode": mode, "turns": list(turns), **fields}


def only_answer(report: dict[str, Any]) -> dict[str, Any]:
    assert report["error"] is None, report["error"]
    [answer] = report["answers"]
    assert isinstance(answer, dict)
    return answer


# --- plain and streamed -----------------------------------------------------------------------


@pytest.mark.parametrize("client", clients())
async def test_plain(aiohttp_server: AiohttpServer, client: str) -> None:
    server = await live(aiohttp_server, client)
    answer = only_answer(await drive(case(client, server, "generate", "Hello")))
    assert answer["text"] == offline_answer("Hello")
    assert answer["finish_reason"] == "stop"


@pytest.mark.parametrize("client", clients())
async def test_streamed(aiohttp_server: AiohttpServer, client: str) -> None:
    server = await live(aiohttp_server, client)
    answer = only_answer(await drive(case(client, server, "stream", "Hello")))
    assert answer["errors"] == []
    assert answer["text"] == offline_answer("Hello")
    assert "text-delta*" in answer["parts"], "the text arrives in pieces"


@pytest.mark.parametrize("client", clients(databricks_chat_agent=CHAT_AGENT_FINISH_OTHER))
async def test_streamed_finish_reason(aiohttp_server: AiohttpServer, client: str) -> None:
    server = await live(aiohttp_server, client)
    answer = only_answer(await drive(case(client, server, "stream", "Hello")))
    assert answer["finish_reason"] == "stop"


# --- a conversation ---------------------------------------------------------------------------


@pytest.fixture
async def upstream(aiohttp_server: AiohttpServer) -> tuple[FakeOpenAI, dict[str, str]]:
    """A fake OpenAI-compatible model endpoint, and the settings that point the service at it."""
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.app())
    env = {
        "OPENAI_BASE_URL": str(server.make_url("/v1")),
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_MODEL": "fake-model",
        "MODEL_MAX_RETRIES": "0",
    }
    return fake, env


async def check_conversation(
    aiohttp_server: AiohttpServer,
    upstream: tuple[FakeOpenAI, dict[str, str]],
    client: str,
    state_store: str,
    **fields: Any,
) -> dict[str, Any]:
    fake, env = upstream
    server = await live(aiohttp_server, client, STATE_STORE=state_store, **env)
    turns = ("My name is Ada.", "What is my name?")
    report = await drive(case(client, server, "generate", *turns, **fields))
    assert report["error"] is None, report["error"]
    first, second = report["answers"]
    answer = "Hello from the fake model."
    assert first["text"] == second["text"] == answer
    assert said_to_model(fake) == [
        ("user", turns[0]),
        ("assistant", answer),
        ("user", turns[1]),
    ], "the model sees the whole conversation"
    return report


@pytest.mark.parametrize("client", clients())
async def test_multi_turn(
    aiohttp_server: AiohttpServer,
    upstream: tuple[FakeOpenAI, dict[str, str]],
    tmp_path: Path,
    client: str,
) -> None:
    """Each client as it comes, against a server that keeps state (the default): the OpenAI
    provider sends earlier answers as item_reference items (with `store`, its default, on);
    the others send the whole conversation."""
    state_store = f"sqlite:///{tmp_path / 'state.db'}"
    report = await check_conversation(aiohttp_server, upstream, client, state_store)
    if client == OPENAI_RESPONSES:
        second_input = report["sent"][1]["input"]
        assert any(item.get("type") == "item_reference" for item in second_input)


async def test_multi_turn_without_store_responses(
    aiohttp_server: AiohttpServer, upstream: tuple[FakeOpenAI, dict[str, str]]
) -> None:
    """Against a server without state (`STATE_STORE=off`), the OpenAI provider with
    `store: false` sends the earlier answers in full."""
    options = {"openai": {"store": False}}
    await check_conversation(
        aiohttp_server, upstream, OPENAI_RESPONSES, "off", provider_options=options
    )


# --- tools ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "mode"),
    clients("generate", "stream", databricks_chat_agent=CHAT_AGENT_NO_CLIENT_TOOLS),
)
async def test_client_tool_loop(aiohttp_server: AiohttpServer, client: str, mode: str) -> None:
    """The model asks for the client's tool; the SDK runs it and sends the result back; the
    model answers. (The chatbot marks every call as the server's, so a client that runs its
    own tools uses the provider's default, `useRemoteToolCalling: false`.)"""
    server = await live(aiohttp_server, client, script=CLIENT_TOOL_SCRIPT)
    fields = {"tools": ["get_weather"], "max_steps": 3, "use_remote_tool_calling": False}
    answer = only_answer(await drive(case(client, server, mode, "Weather in Paris?", **fields)))
    assert answer["text"] == "Sunny in Paris."
    assert answer["steps"] == 2
    kinds = [(part["type"], part.get("tool_name")) for part in answer["content"]]
    assert ("tool-call", "get_weather") in kinds
    [result] = [part for part in answer["content"] if part["type"] == "tool-result"]
    assert result["output"] == "Sunny and 24 degrees in Paris."
    assert not result["provider_executed"], "the client ran it"


@pytest.mark.parametrize(
    ("client", "mode"),
    clients(
        "generate",
        "stream",
        databricks_responses__generate=DATABRICKS_GENERATE_IGNORES_REMOTE_TOOLS,
    ),
)
async def test_agent_tools(aiohttp_server: AiohttpServer, client: str, mode: str) -> None:
    """The agent runs its own calculator: the client gets the answer, sees any call it is
    shown as already run by the server, and is never asked to run it."""
    server = await live(aiohttp_server, client, script=AGENT_TOOL_SCRIPT)
    answer = only_answer(await drive(case(client, server, mode, "What is 2**10?")))
    assert answer["text"].endswith("It is 1024.")
    assert answer["steps"] == 1, "no round trip through the client"
    content = answer["content"]
    assert not [part for part in content if part["type"] == "tool-error"]
    calls = [part for part in content if part["type"] == "tool-call"]
    results = [part for part in content if part["type"] == "tool-result"]
    assert all(call["provider_executed"] for call in calls)
    if client != OPENAI_CHAT:  # Chat Completions has no item for a tool the server ran
        # @ai-sdk/openai names a tool the server ran through MCP (our mcp_call items on the
        # OpenAI routes) `mcp.<name>`; the Databricks provider reads MLflow's function_call.
        name = "mcp.calculator" if client == OPENAI_RESPONSES else "calculator"
        assert [call["tool_name"] for call in calls] == [name]
        assert [_tool_output(result["output"]) for result in results] == ["1024"]


def _tool_output(output: Any) -> str:
    """A server-run tool's result as the client reports it: @ai-sdk/openai gives an MCP
    call's whole record (`{"type": "call", "serverLabel", "name", "arguments", "output"}`)."""
    return str(output["output"]) if isinstance(output, dict) else str(output)


# --- usage, trace id --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "mode"),
    clients(
        "generate",
        "stream",
        databricks_responses__stream=DATABRICKS_STREAMED_USAGE,
        databricks_chat_agent=CHAT_AGENT_NO_USAGE,
    ),
)
async def test_usage(aiohttp_server: AiohttpServer, client: str, mode: str) -> None:
    """The client reports the tokens the model counted (the offline model counts words)."""
    server = await live(aiohttp_server, client)
    answer = only_answer(await drive(case(client, server, mode, "Count my words")))
    prompt, reply = len(tokenize("Count my words")), len(tokenize(answer["text"]))
    assert answer["usage"] == {"input": prompt, "output": reply, "total": prompt + reply}


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One store for the session: creating its schema takes seconds.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def tracing(tracking_uri: str, request: pytest.FixtureRequest) -> dict[str, str]:
    return {
        "AGENT_TRACING": "true",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": f"js-clients-{request.node.name}",
        "AGENT_VERSION": "v-test",
    }


def trace_id_read(client: str, mode: str, answer: dict[str, Any]) -> str | None:
    """The trace id where this client's users read it: the OpenAI providers, and the ChatAgent
    model, expose the response's `x-mlflow-trace-id` header; the Databricks chatbot reads the
    body's `metadata.trace_id` (its non-streaming fallback) or the stream's events."""
    if client == DATABRICKS_RESPONSES:
        key = "body_trace_id" if mode == "generate" else "stream_trace_id"
        trace_id = answer[key]
    else:
        trace_id = answer["response_headers"].get("x-mlflow-trace-id")
    assert trace_id is None or isinstance(trace_id, str)
    return trace_id


@pytest.mark.parametrize(
    ("client", "mode"),
    clients("generate", "stream", databricks_chat_agent__generate=CHAT_AGENT_GENERATE_HIDES_IDS),
)
async def test_trace_id(
    aiohttp_server: AiohttpServer, tracing: dict[str, str], client: str, mode: str
) -> None:
    """Every client can read the id of the answer's trace (to attach feedback to it)."""
    server = await live(aiohttp_server, client, **tracing)
    answer = only_answer(await drive(case(client, server, mode, "Hello")))
    trace_id = trace_id_read(client, mode, answer)
    assert trace_id is not None
    trace = await server.trace(trace_id)
    assert trace.info.state == "OK"


# --- failures ---------------------------------------------------------------------------------

TEMPERATURE_CLIENTS = [client for client in CLIENTS if client != DATABRICKS_CHAT_AGENT]


@pytest.mark.parametrize("client", TEMPERATURE_CLIENTS)
async def test_bad_request(aiohttp_server: AiohttpServer, client: str) -> None:
    """An out-of-range setting gets a 400 the client raises with our message. (The ChatAgent
    model sends no settings; its 400 is the wrong-protocol case below.)"""
    server = await live(aiohttp_server, client)
    report = await drive(case(client, server, "generate", "Hi", settings={"temperature": 5}))
    error = report["error"]
    assert error is not None
    assert error["status_code"] == 400
    assert "$.temperature" in error["message"]


async def stream_cut_after_two_tokens(
    aiohttp_server: AiohttpServer, upstream: tuple[FakeOpenAI, dict[str, str]], client: str
) -> dict[str, Any]:
    fake, env = upstream
    fake.behaviour = Behaviour(drop_after_chunks=3)  # the role chunk and two tokens
    server = await live(aiohttp_server, client, **env)
    return only_answer(await drive(case(client, server, "stream", "Hi")))


@pytest.mark.parametrize("client", clients())
async def test_upstream_fails_mid_stream(
    aiohttp_server: AiohttpServer, upstream: tuple[FakeOpenAI, dict[str, str]], client: str
) -> None:
    """The model endpoint drops the connection after two tokens: the client gets those two
    tokens and then an error."""
    answer = await stream_cut_after_two_tokens(aiohttp_server, upstream, client)
    assert answer["text"] == "Hello from"
    assert answer["errors"], "the failure reaches the client"


@pytest.mark.parametrize("client", clients(databricks_responses=DATABRICKS_FINISHES_FAILED_STREAMS))
async def test_failed_stream_does_not_finish_as_stop(
    aiohttp_server: AiohttpServer, upstream: tuple[FakeOpenAI, dict[str, str]], client: str
) -> None:
    """…and the SDK does not report the cut-off answer as finished normally."""
    answer = await stream_cut_after_two_tokens(aiohttp_server, upstream, client)
    assert answer["finish_reason"] != "stop"
