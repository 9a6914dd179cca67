"""Background responses (`background: true`): answered at once, run without the client,
polled, streamed from any point to the end while still running, cancelled — on SQLite and
PostgreSQL. The fake model pauses mid-answer so each test sees a run truly in progress."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestServer
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from openai.types.responses import Response
from pytest_aiohttp import AiohttpServer

from agent_service.keys import STATE
from agent_service.state.identity import ANONYMOUS, thread_key
from tests.conftest import ServiceFactory, openai_env, sdk_on_store
from tests.fakes.openai_server import FakeOpenAI
from tests.raw_http import PATIENCE_S
from tests.test_state_resume import events_of, field
from tests.wire import Client

TOKENS = tuple(f" word{n}" for n in range(12))


@pytest.fixture
def fake(fake_openai: tuple[FakeOpenAI, TestServer]) -> Iterator[FakeOpenAI]:
    model, _ = fake_openai
    model.behaviour.tokens = TOKENS
    model.behaviour.pause_after_chunks = 4
    yield model
    model.resume.set()  # a failed test leaves no run waiting


def check_response(body: dict[str, Any]) -> None:
    """OpenAI's response type: it knows `queued` and `cancelled` (MLflow's warns on them)."""
    Response.model_validate(body)


@pytest.fixture
async def client(
    make_service: ServiceFactory,
    fake: FakeOpenAI,
    fake_openai: tuple[FakeOpenAI, TestServer],
    state_url: str,
) -> Client:
    _, server = fake_openai
    return await make_service(openai_env(server, STATE_STORE=state_url, SSE_HEARTBEAT_SECONDS="0"))


async def start(client: Client, fake: FakeOpenAI, **body: Any) -> dict[str, Any]:
    """A background run, paused by the model mid-answer."""
    response = await client.post(
        "/v1/responses", json={"input": "Tell me", "background": True, **body}
    )
    assert response.status == 200, await response.text()
    started: dict[str, Any] = await response.json()
    # Bounded: a run that failed before the model answered never reaches the pause.
    async with asyncio.timeout(PATIENCE_S):
        await fake.paused.wait()
    return started


async def next_event(response: ClientResponse) -> bytes:
    raw = await response.content.readuntil(b"\n\n")
    return events_of(raw)[0]


async def test_a_background_response_answers_at_once_and_is_polled_to_completion(
    client: Client, fake: FakeOpenAI
) -> None:
    started = await start(client, fake)
    check_response(started)
    assert started["status"] == "queued"
    assert started["background"] is True
    polled = await (await client.get(f"/v1/responses/{started['id']}")).json()
    check_response(polled)
    assert polled["status"] == "in_progress"
    fake.resume.set()
    # The stream ends with the run: reading it is waiting for the end.
    events = events_of(
        await (await client.get(f"/v1/responses/{started['id']}?stream=true")).read()
    )
    assert field(events[-1], b"event") == b"response.completed"
    done = await (await client.get(f"/v1/responses/{started['id']}")).json()
    check_response(done)
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == "".join(TOKENS)
    # A completed background response is a stored one: the conversation continues from it.
    follow_up = await client.post(
        "/v1/responses", json={"input": "And?", "previous_response_id": started["id"]}
    )
    assert follow_up.status == 200


async def test_a_live_stream_dropped_anywhere_resumes_byte_for_byte(
    client: Client, fake: FakeOpenAI
) -> None:
    started = await start(client, fake)
    url = f"/v1/responses/{started['id']}?stream=true"
    whole = await client.get(url)
    first = [await next_event(whole) for _ in range(3)]
    # A second client drops its stream while the run is still going...
    dropped = await client.get(url)
    seen = [await next_event(dropped) for _ in range(2)]
    dropped.close()
    fake.resume.set()
    uninterrupted = first + events_of(await whole.read())
    assert field(uninterrupted[-1], b"event") == b"response.completed"
    # ...and picks it up with Last-Event-ID; others cut at random points, with starting_after.
    again = await client.get(url, headers={"Last-Event-ID": field(seen[-1], b"id").decode()})
    assert seen + events_of(await again.read()) == uninterrupted
    for cut in random.Random(14).sample(  # noqa: S311 - which events to cut at, not a secret
        range(len(uninterrupted) - 1), 4
    ):
        rest = await client.get(f"{url}&starting_after={cut}")
        assert uninterrupted[: cut + 1] + events_of(await rest.read()) == uninterrupted


async def test_cancel_stops_the_run_and_the_model_call(client: Client, fake: FakeOpenAI) -> None:
    started = await start(client, fake)
    url = f"/v1/responses/{started['id']}"
    following = await client.get(f"{url}?stream=true")
    cancelled = await client.post(f"{url}/cancel")
    assert cancelled.status == 200
    body = await cancelled.json()
    check_response(body)
    assert body["status"] == "cancelled"
    await fake.cancelled.wait()  # the model saw its request closed
    events = events_of(await following.read())
    last = orjson.loads(field(events[-1], b"data"))
    assert (last["type"], last["code"]) == ("error", "response_cancelled")
    assert (await (await client.get(url)).json())["status"] == "cancelled"
    # OpenAI: cancelling again returns the cancelled response.
    twice = await client.post(f"{url}/cancel")
    assert twice.status == 200
    assert (await twice.json())["status"] == "cancelled"


async def test_what_cannot_be_cancelled(client: Client, fake: FakeOpenAI) -> None:
    fake.behaviour.pause_after_chunks = None
    done = await (
        await client.post("/v1/responses", json={"input": "hi", "background": True})
    ).json()
    await (await client.get(f"/v1/responses/{done['id']}?stream=true")).read()
    finished = await client.post(f"/v1/responses/{done['id']}/cancel")
    assert finished.status == 400
    assert "completed" in (await finished.json())["error"]["message"]
    plain = await (await client.post("/v1/responses", json={"input": "hi"})).json()
    foreground = await client.post(f"/v1/responses/{plain['id']}/cancel")
    assert foreground.status == 400
    assert "background" in (await foreground.json())["error"]["message"]
    unknown = await client.post("/v1/responses/resp_nothing/cancel")
    assert unknown.status == 404
    assert (await unknown.json())["error"]["param"] == "response_id"


async def test_background_needs_the_store(
    make_service: ServiceFactory, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    _, server = fake_openai
    service = await make_service(openai_env(server))
    refused = await service.post(
        "/v1/responses", json={"input": "hi", "background": True, "store": False}
    )
    assert refused.status == 400
    assert (await refused.json())["error"]["param"] == "$.store"
    off = await make_service(openai_env(server, STATE_STORE="off"))
    refused = await off.post("/v1/responses", json={"input": "hi", "background": True})
    assert refused.status == 400
    assert (await refused.json())["error"]["param"] == "$.background"


async def test_runs_past_the_worker_limit_are_refused_with_429(
    make_service: ServiceFactory, fake: FakeOpenAI, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    _, server = fake_openai
    service = await make_service(openai_env(server, BACKGROUND_RUNS_PER_WORKER="1"))
    await start(service, fake)
    refused = await service.post("/v1/responses", json={"input": "hi", "background": True})
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    error = (await refused.json())["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "too_many_background_runs")
    fake.resume.set()


@pytest.fixture
async def sdk(
    aiohttp_server: AiohttpServer,
    fake: FakeOpenAI,
    fake_openai: tuple[FakeOpenAI, TestServer],
    state_url: str,
) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk_on_store(aiohttp_server, fake_openai[1], state_url) as client:
        yield client


async def test_the_openai_sdk_runs_background_responses_unchanged(
    sdk: openai.AsyncOpenAI, fake: FakeOpenAI
) -> None:
    started = await sdk.responses.create(model="agent", input="Tell me", background=True)
    assert started.status == "queued"
    await fake.paused.wait()
    assert (await sdk.responses.retrieve(started.id)).status == "in_progress"
    stream = await sdk.responses.retrieve(started.id, stream=True, starting_after=2)
    fake.resume.set()
    events = [event async for event in stream]
    assert events[0].sequence_number == 3
    assert events[-1].type == "response.completed"
    done = await sdk.responses.retrieve(started.id)
    assert done.status == "completed"
    assert done.output_text == "".join(TOKENS)

    fake.resume.clear()
    fake.paused.clear()
    second = await sdk.responses.create(model="agent", input="Again", background=True)
    await fake.paused.wait()
    cancelled = await sdk.responses.cancel(second.id)
    assert cancelled.status == "cancelled"
    assert (await sdk.responses.retrieve(second.id)).status == "cancelled"


async def test_invocations_clients_reach_background_runs_as_databricks_long_running_server(
    make_service: ServiceFactory,
    fake: FakeOpenAI,
    fake_openai: tuple[FakeOpenAI, TestServer],
    state_url: str,
) -> None:
    """Databricks' LongRunningAgentServer: POST /invocations with `background`, then GET
    /responses/{id} (or /retrieve/{id}) to poll, with stream=true&starting_after=N to read."""
    _, server = fake_openai
    service = await make_service(
        openai_env(server, STATE_STORE=state_url, AGENT_TASK="agent/v1/responses")
    )
    started = await service.post(
        "/invocations",
        json={"input": [{"role": "user", "content": "Tell me"}], "background": True},
    )
    assert started.status == 200, await started.text()
    response_id = (await started.json())["id"]
    await fake.paused.wait()
    for path in (f"/responses/{response_id}", f"/retrieve/{response_id}"):
        assert (await (await service.get(path)).json())["status"] == "in_progress"
    fake.resume.set()
    rest = await service.get(f"/responses/{response_id}?stream=true&starting_after=0")
    events = events_of(await rest.read())
    assert int(field(events[0], b"id")) == 1
    assert field(events[-1], b"event") == b"response.completed"
    done = await (await service.get(f"/retrieve/{response_id}")).json()
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == "".join(TOKENS)


async def test_a_conversation_whose_first_turn_died_mid_run_starts_from_nothing(
    client: Client, fake: FakeOpenAI
) -> None:
    """A first turn whose worker died after the graph saved steps (a resumable background
    run, reaped without resume) left checkpoints in the conversation's thread: the next turn
    must not continue them (a failed turn is never continued)."""
    created = await client.post("/v1/conversations", json={})
    conversation = (await created.json())["id"]
    assert client.app is not None
    store = client.app[STATE].store
    assert store is not None
    # What the dead worker's graph saved: the failed turn's input, as LangGraph stores it.
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [AIMessage("half an answer")]})
    graph.add_edge(START, "model")
    saved = graph.compile(checkpointer=store.checkpointer)
    config: Any = {"configurable": {"thread_id": thread_key(ANONYMOUS, conversation)}}
    await saved.ainvoke({"messages": [HumanMessage("the failed question")]}, config)
    answered = await client.post(
        "/v1/responses", json={"input": "a new question", "conversation": conversation}
    )
    assert answered.status == 200, await answered.text()
    asked = [str(m.get("content")) for m in fake.requests[-1].body["messages"]]
    assert any("a new question" in text for text in asked)
    assert not any("failed question" in text or "half an answer" in text for text in asked)
