"""@invoke / @stream functions keep the semantics of MLflow's AgentServer and of the seed
prototype, and get everything the service does: the full protocol from partial output, the
three protocols, threads for sync code, HTTP statuses from their exceptions, the request's
headers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from fastapi import HTTPException
from mlflow.types.responses import ResponsesAgentRequest

from agent_service import agent_server
from agent_service.agents.functions import FunctionAgent, Handlers
from tests.conftest import ServiceFactory
from tests.served import INVOCATIONS_TASK, ask_three_ways
from tests.wire import HELLO_RESPONSES, Client, data_frames, named_frames, stream


def message_item(text: str, item_id: str = "msg_1") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def done(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.done", "item": item}


async def serve(make_service: ServiceFactory, task: str, **handlers: Any) -> Client:
    agent = FunctionAgent(task, Handlers(**handlers))
    return await make_service(INVOCATIONS_TASK, agent=agent)


# --- registration -----------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_registrations")
def test_each_decorator_registers_once() -> None:
    @agent_server.invoke()
    def first(request: dict[str, Any]) -> dict[str, Any]:
        return {}

    assert agent_server.get_invoke_function() is first
    assert agent_server.get_stream_function() is None
    with pytest.raises(ValueError, match="invoke decorator can only be used once"):

        @agent_server.invoke()
        def second(request: dict[str, Any]) -> dict[str, Any]:
            return {}

    assert agent_server.get_invoke_function() is first


@pytest.mark.usefixtures("fresh_registrations")
async def test_mlflow_agent_server_gives_a_typed_request_the_prototype_a_dict(
    make_service: ServiceFactory,
) -> None:
    seen: list[Any] = []

    @agent_server.invoke()
    async def answer(request: Any) -> dict[str, Any]:
        seen.append(request)
        return {"output": [message_item("hi")]}

    for server in (agent_server.AgentServer("ResponsesAgent"), agent_server.create_server()):
        client = await make_service({"AGENT_TASK": "agent/v1/responses"}, agent=server.app)
        # OpenAI's plain-string input reaches the function as MLflow's list of items.
        response = await client.post("/invocations", json={"input": "Hello", "stream": False})
        assert response.status == 200
    typed, plain = seen
    assert isinstance(typed, ResponsesAgentRequest)
    assert typed.model_dump(exclude_none=True)["input"][0]["content"] == "Hello"
    assert plain == {"input": [{"role": "user", "content": "Hello"}]}


# --- what the functions give back ---------------------------------------------------------


async def test_items_only_become_the_full_openai_event_sequence(
    make_service: ServiceFactory,
) -> None:
    async def items_only(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield done(message_item("Hello there."))

    client = await serve(make_service, "agent/v1/responses", stream=items_only)
    events = named_frames(await stream(client, "/v1/responses", HELLO_RESPONSES))
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(9))
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello there."


async def test_mlflow_text_deltas_without_sequence_numbers(make_service: ServiceFactory) -> None:
    async def deltas(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        for piece in ("Hel", "lo", "!"):
            yield {"type": "response.output_text.delta", "item_id": "m1", "delta": piece}
        yield done(message_item("Hello!", "m1"))

    client = await serve(make_service, "agent/v1/responses", stream=deltas)
    answers = await ask_three_ways(client, "Hi")
    assert answers.texts == ("Hello!", "Hello!", "Hello!")
    assert answers.response_events.count("response.output_text.delta") == 3


async def test_tool_items_reach_each_protocol_in_its_own_form(
    make_service: ServiceFactory,
) -> None:
    async def with_tools(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield done(message_item("Let me compute.", "m1"))
        call = {"type": "function_call", "id": "fc1", "call_id": "c1", "name": "calculator"}
        yield done({**call, "arguments": '{"expression": "6*7"}'})
        yield done({"type": "function_call_output", "call_id": "c1", "output": "42"})
        yield done(message_item("It is 42.", "m2"))

    client = await serve(make_service, "agent/v1/responses", stream=with_tools)
    answers = await ask_three_ways(client, "6*7?")
    # The agent ran its own tool: Chat Completions shows the answer, not the call.
    assert answers.chat["choices"][0]["message"]["content"] == "Let me compute.\n\nIt is 42."
    assert answers.chat["choices"][0]["finish_reason"] == "stop"
    # ChatAgent: the text and the call it led to are one assistant message, as from a graph.
    roles = [(m["role"], bool(m.get("tool_calls"))) for m in answers.chat_agent["messages"]]
    assert roles == [("assistant", True), ("tool", False), ("assistant", False)]
    assert answers.chat_agent["messages"][1]["name"] == "calculator"
    # /v1/responses shows the agent's own call as an mcp_call item, already run.
    kinds = [item["type"] for item in answers.responses["output"]]
    assert kinds == ["message", "mcp_call", "message"]


async def test_a_chat_agent_function_is_served_on_the_openai_routes(
    make_service: ServiceFactory,
) -> None:
    seen: list[dict[str, Any]] = []

    async def chat_agent(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        seen.append(request)
        for piece in ("Bon", "jour"):
            yield {"delta": {"role": "assistant", "content": piece, "id": "a1"}}

    client = await serve(make_service, "agent/v2/chat", stream=chat_agent)
    answers = await ask_three_ways(client, "Hello")
    assert answers.texts == ("Bonjour", "Bonjour", "Bonjour")
    # From /v1/responses too, the function got its own protocol's request.
    assert seen[-1] == {"messages": [{"role": "user", "content": "Hello"}]}


async def test_only_stream_folds_for_json_only_invoke_sends_one_sequence(
    make_service: ServiceFactory,
) -> None:
    async def streamed(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "response.output_text.delta", "item_id": "m", "delta": "Hi "}
        yield {"type": "response.output_text.delta", "item_id": "m", "delta": "there"}

    only_stream = await serve(make_service, "agent/v1/responses", stream=streamed)
    answer = await (await only_stream.post("/v1/responses", json=HELLO_RESPONSES)).json()
    assert answer["output"][0]["content"][0]["text"] == "Hi there"

    async def invoked(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "output": [message_item("All at once.")],
            "usage": {"input_tokens": 3, "output_tokens": 3, "total_tokens": 6},
        }

    only_invoke = await serve(make_service, "agent/v1/responses", invoke=invoked)
    events = named_frames(await stream(only_invoke, "/v1/responses", HELLO_RESPONSES))
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == [
        "All at once."
    ]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["total_tokens"] == 6


# --- how they run ------------------------------------------------------------------------


async def test_sync_functions_and_generators_run_in_threads_never_on_the_loop(
    make_service: ServiceFactory,
) -> None:
    threads: list[str] = []

    def on_a_thread() -> None:
        threads.append(threading.current_thread().name)
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # no event loop here: not the loop's thread

    def invoke(request: dict[str, Any]) -> dict[str, Any]:
        on_a_thread()
        return {"output": [message_item("sync answer")]}

    def stream_(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for piece in ("sync ", "stream"):
            on_a_thread()
            yield {"type": "response.output_text.delta", "item_id": "m", "delta": piece}

    client = await serve(make_service, "agent/v1/responses", invoke=invoke, stream=stream_)
    answer = await (await client.post("/v1/responses", json=HELLO_RESPONSES)).json()
    assert answer["output"][0]["content"][0]["text"] == "sync answer"
    events = named_frames(await stream(client, "/v1/responses", HELLO_RESPONSES))
    assert "".join(e["delta"] for e in events if "delta" in e) == "sync stream"
    assert len(threads) == 3
    assert threading.main_thread().name not in threads


async def test_the_request_headers_are_the_functions_to_read(
    make_service: ServiceFactory,
) -> None:
    seen: list[dict[str, str]] = []

    def invoke(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(agent_server.get_request_headers())
        return {"output": [message_item("ok")]}

    client = await serve(make_service, "agent/v1/responses", invoke=invoke)
    headers = {"X-Forwarded-Access-Token": "user-token-123"}
    await client.post("/v1/responses", json=HELLO_RESPONSES, headers=headers)
    assert seen[0]["x-forwarded-access-token"] == "user-token-123"
    # Outside a request there are none.
    assert agent_server.get_request_headers() == {}


# --- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "status", "message"),
    [
        (HTTPException(status_code=403, detail="Not your agent."), 403, "Not your agent."),
        (web.HTTPTooManyRequests(text="Slow down."), 429, "Slow down."),
        (HTTPException(status_code=503, detail="db://secret@host down"), 503, "failed to handle"),
        (RuntimeError("db://secret@host down"), 500, "failed to handle"),
    ],
)
async def test_exceptions_with_a_status_code_keep_it_others_are_a_generic_500(
    make_service: ServiceFactory, raised: Exception, status: int, message: str
) -> None:
    async def invoke(request: dict[str, Any]) -> dict[str, Any]:
        raise raised

    client = await serve(make_service, "agent/v1/responses", invoke=invoke)
    for streamed in (False, True):
        body = {**HELLO_RESPONSES, "stream": streamed}
        response = await client.post("/v1/responses", json=body)
        assert response.status == status
        error = (await response.json())["error"]
        assert message in error["message"]
        assert "secret" not in error["message"]
        assert "request id" in error["message"] or status < 500


async def test_a_failure_after_the_first_byte_is_a_terminal_event_with_that_status_code(
    make_service: ServiceFactory,
) -> None:
    async def stream_(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "response.output_text.delta", "item_id": "m", "delta": "Partial"}
        raise HTTPException(status_code=429, detail="Quota used up.")

    client = await serve(make_service, "agent/v1/responses", stream=stream_)
    body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 200
    events = await response.read()
    frames = [orjson.loads(line[6:]) for line in events.split(b"\n") if line.startswith(b"data: {")]
    assert frames[-1]["error"]["code"] == "rate_limited"
    assert "Quota used up." in frames[-1]["error"]["message"]
    assert events.endswith(b"data: [DONE]\n\n")


# --- per-worker resources -------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_registrations")
async def test_a_startup_hook_opens_resources_once_per_worker(
    make_service: ServiceFactory,
) -> None:
    pool: list[str] = []

    @agent_server.startup()
    async def connection_pool() -> AsyncIterator[None]:
        pool.append("opened")
        yield
        pool.append("closed")

    @agent_server.invoke()
    async def answer(request: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [{"role": "assistant", "content": f"pool {pool[-1]}", "id": "a"}]}

    client = await make_service(INVOCATIONS_TASK, agent=agent_server.create_server().app)
    for _ in range(2):
        body = {"messages": [{"role": "user", "content": "Hi"}]}
        reply = await (await client.post("/invocations", json=body)).json()
        assert reply["messages"][0]["content"] == "pool opened"
    assert pool == ["opened"]
    await client.close()
    assert pool == ["opened", "closed"]


def test_frames_of_a_data_only_stream_are_what_clients_parse() -> None:
    # Guard for the helpers above: a [DONE]-terminated stream decodes to its JSON frames.
    from tests.sse_decoder import decode

    events = decode([b'data: {"a": 1}\n\ndata: [DONE]\n\n'])
    assert data_frames(events) == [{"a": 1}]


# --- endings -----------------------------------------------------------------------------


async def test_a_client_leaving_stops_the_functions(make_service: ServiceFactory) -> None:
    """An async generator is closed at once; a sync one as soon as its step in progress
    returns (a thread cannot be interrupted). Left alone, either would run for minutes."""
    stopped: dict[str, asyncio.Event] = {"async": asyncio.Event(), "sync": asyncio.Event()}
    loop = asyncio.get_running_loop()

    async def async_stream(request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            while True:
                yield {"type": "response.output_text.delta", "item_id": "m", "delta": "tick "}
                await asyncio.sleep(0.01)
        finally:
            stopped["async"].set()

    def sync_stream(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            for _ in range(10_000):
                yield {"type": "response.output_text.delta", "item_id": "m", "delta": "tock "}
                threading.Event().wait(0.01)
        finally:
            loop.call_soon_threadsafe(stopped["sync"].set)

    for kind, function in (("async", async_stream), ("sync", sync_stream)):
        client = await serve(make_service, "agent/v1/responses", stream=function)
        response = await client.post("/v1/responses", json={**HELLO_RESPONSES, "stream": True})
        received = b""
        while received.count(b"delta") < 3:
            received += await response.content.readany()
        response.close()
        async with asyncio.timeout(10):
            await stopped[kind].wait()


async def test_the_deadline_stops_a_function_that_never_answers(
    make_service: ServiceFactory,
) -> None:
    cancelled = asyncio.Event()

    async def never(request: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    agent = FunctionAgent("agent/v1/responses", Handlers(invoke=never))
    client = await make_service({"REQUEST_DEADLINE_SECONDS": "0.2"}, agent=agent)
    response = await client.post("/v1/responses", json=HELLO_RESPONSES)
    assert response.status == 504
    assert (await response.json())["error"]["code"] == "deadline_exceeded"
    assert cancelled.is_set()
