"""Streams of stored responses can be read again: every Responses event carries `id:` (its
sequence number), and `GET /v1/responses/{id}?stream=true` replays the stored events, all or
those after `starting_after` / Last-Event-ID — byte for byte what the first stream sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpServer

from tests.conftest import ServiceFactory, openai_env, sdk_on_store
from tests.fakes.openai_server import FakeOpenAI
from tests.state_probes import count, mentions

Client = TestClient[Any, Any]


@pytest.fixture
async def client(
    make_service: ServiceFactory, fake_openai: tuple[FakeOpenAI, TestServer], state_url: str
) -> Client:
    fake, server = fake_openai
    fake.behaviour.tokens = tuple(f" word{n}" for n in range(12))
    return await make_service(
        openai_env(server, STATE_STORE=state_url, AGENT_TASK="agent/v1/responses")
    )


def events_of(raw: bytes) -> list[bytes]:
    """The stream's events as sent (comments such as heartbeats left out)."""
    blocks = raw.split(b"\n\n")
    kept = []
    for block in blocks:
        lines = [line for line in block.split(b"\n") if line and not line.startswith(b":")]
        if lines:
            kept.append(b"\n".join(lines) + b"\n\n")
    return kept


def field(event: bytes, name: bytes) -> bytes:
    for line in event.split(b"\n"):
        if line.startswith(name + b": "):
            return line[len(name) + 2 :]
    raise AssertionError(f"no {name!r} in {event!r}")


async def streamed(client: Client, path: str = "/v1/responses", **body: Any) -> list[bytes]:
    response = await client.post(path, json={"input": "Tell me", "stream": True, **body})
    assert response.status == 200
    return events_of(await response.read())


async def test_every_responses_event_carries_its_sequence_number_as_id(client: Client) -> None:
    for path in ("/v1/responses", "/invocations"):
        events = [e for e in await streamed(client, path) if not e.startswith(b"data: [DONE]")]
        for event in events:
            payload = orjson.loads(field(event, b"data"))
            assert int(field(event, b"id")) == payload["sequence_number"]
    chat = await client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert b"\nid: " not in await chat.read(), "only Responses events are numbered"


async def test_a_stored_stream_replays_byte_for_byte(client: Client) -> None:
    original = await streamed(client)
    response_id = orjson.loads(field(original[0], b"data"))["response"]["id"]
    replay = await client.get(f"/v1/responses/{response_id}?stream=true")
    assert replay.status == 200
    assert replay.headers["Content-Type"] == "text/event-stream"
    assert events_of(await replay.read()) == original


@pytest.mark.parametrize("cut", [0, 1, 5, 9, -2])
async def test_a_dropped_stream_resumes_without_gaps_or_duplicates(
    client: Client, cut: int
) -> None:
    original = await streamed(client)
    response_id = orjson.loads(field(original[0], b"data"))["response"]["id"]
    seen = original[: cut + 1] if cut >= 0 else original[:cut]
    last = int(field(seen[-1], b"id"))
    by_query = await client.get(f"/v1/responses/{response_id}?stream=true&starting_after={last}")
    assert seen + events_of(await by_query.read()) == original
    by_header = await client.get(
        f"/v1/responses/{response_id}?stream=true", headers={"Last-Event-ID": str(last)}
    )
    assert seen + events_of(await by_header.read()) == original


async def test_only_stored_streams_can_be_read_again(client: Client, state_url: str) -> None:
    answered = await (await client.post("/v1/responses", json={"input": "json please"})).json()
    again = await client.get(f"/v1/responses/{answered['id']}?stream=true")
    assert again.status == 400
    assert (await again.json())["error"]["param"] == "stream"
    unknown = await client.get("/v1/responses/resp_unknown?stream=true")
    assert unknown.status == 404
    original = await streamed(client, input="stream-to-forget")
    response_id = orjson.loads(field(original[0], b"data"))["response"]["id"]
    stored = "response_id = ?"
    assert await count(state_url, "agent_response_events", stored, response_id) == len(original)
    assert (await client.delete(f"/v1/responses/{response_id}")).status == 200
    assert await count(state_url, "agent_response_events", stored, response_id) == 0
    assert await mentions(state_url, "stream-to-forget") == {}
    assert (await client.get(f"/v1/responses/{response_id}?stream=true")).status == 404


@pytest.fixture
async def sdk(
    aiohttp_server: AiohttpServer, fake_openai: tuple[FakeOpenAI, TestServer], state_url: str
) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk_on_store(aiohttp_server, fake_openai[1], state_url) as client:
        yield client


async def test_the_openai_sdk_retrieves_a_stream_from_where_it_stopped(
    sdk: openai.AsyncOpenAI,
) -> None:
    first = await sdk.responses.create(model="agent", input="Tell me", stream=True)
    events = [event async for event in first]
    response_id = events[0].response.id  # type: ignore[union-attr]
    rest = await sdk.responses.retrieve(response_id, stream=True, starting_after=3)
    resumed = [event async for event in rest]
    assert [e.sequence_number for e in resumed] == [e.sequence_number for e in events[4:]]
    assert resumed[-1].type == "response.completed"
    assert resumed[-1].response.output_text == events[-1].response.output_text  # type: ignore[union-attr]
