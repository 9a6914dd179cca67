"""Background runs across processes: two instances on one PostgreSQL (started on A, followed
and cancelled on B), a gunicorn worker killed mid-run (the run ends `failed`, worker_lost,
within the stale bound), and SIGTERM with a run in flight (it ends `failed`, shutdown)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.databases import PostgresServer
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import BIN, ServerProcess, free_port, running_server
from tests.state_probes import rows
from tests.test_state_resume import events_of, field

TOKENS = tuple(f" word{n}" for n in range(12))
# Fast heartbeats: a dead worker's run is found within STALE + HEARTBEAT seconds.
HEARTBEAT, STALE = "0.2", "1.5"


@pytest.fixture
def fake(fake_openai: tuple[FakeOpenAI, TestServer]) -> Iterator[FakeOpenAI]:
    model, _ = fake_openai
    model.behaviour.tokens = TOKENS
    model.behaviour.pause_after_chunks = 4
    yield model
    model.resume.set()


def env_for(model: TestServer, state: str, **extra: str) -> dict[str, str]:
    return {
        "STATE_STORE": state,
        "AGENT_TRACING": "false",
        "OPENAI_BASE_URL": str(model.make_url("/v1")),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": "fake-model",
        "MODEL_MAX_RETRIES": "0",
        "BACKGROUND_HEARTBEAT_SECONDS": HEARTBEAT,
        "BACKGROUND_STALE_SECONDS": STALE,
        "BACKGROUND_POLL_SECONDS": "0.05",
        "SSE_HEARTBEAT_SECONDS": "0",
        **extra,
    }


def serve(stack: ExitStack, env: dict[str, str], log: Path, *extra: str) -> ServerProcess:
    port = free_port()
    args = [str(BIN / "agent-server"), "--port", str(port), *extra]
    return stack.enter_context(running_server(args, env, log, port))


async def start(client: httpx.AsyncClient, fake: FakeOpenAI) -> str:
    fake.paused.clear()
    started = await client.post("/v1/responses", json={"input": "Tell me", "background": True})
    assert started.status_code == 200, started.text
    await fake.paused.wait()
    response_id: str = started.json()["id"]
    return response_id


async def whole_stream(client: httpx.AsyncClient, response_id: str, after: int = -1) -> bytes:
    """The stream of a run read to its end (it ends when the run ends)."""
    url = f"/v1/responses/{response_id}?stream=true&starting_after={after}"
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.aiter_bytes()])


def last_event(raw: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(field(events_of(raw)[-1], b"data"))
    return payload


async def test_a_run_started_on_one_instance_is_followed_and_cancelled_on_another(
    tmp_path: Path,
    postgres_server: PostgresServer,
    fake: FakeOpenAI,
    fake_openai: tuple[FakeOpenAI, TestServer],
) -> None:
    _, model = fake_openai
    env = env_for(model, postgres_server.create_database())
    with ExitStack() as stack:
        a = serve(stack, env, tmp_path / "a.log")
        b = serve(stack, env, tmp_path / "b.log")
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
            httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
        ):
            # Followed on B while A runs it: B reads the store, then A's live events.
            first = await start(on_a, fake)
            assert (await on_b.get(f"/v1/responses/{first}")).json()["status"] == "in_progress"
            url = f"/v1/responses/{first}?stream=true"
            async with on_b.stream("GET", url) as following:
                fake.resume.set()
                on_b_raw = b"".join([chunk async for chunk in following.aiter_bytes()])
            assert last_event(on_b_raw)["type"] == "response.completed"
            # Byte for byte what A's own stream of it says.
            assert events_of(on_b_raw) == events_of(await whole_stream(on_a, first))
            # Cancelled through B: A's heartbeat tick sees the request and stops the run.
            fake.resume.clear()
            fake.cancelled.clear()
            second = await start(on_a, fake)
            cancelled = await on_b.post(f"/v1/responses/{second}/cancel")
            assert cancelled.status_code == 200
            assert cancelled.json()["status"] == "cancelled"
            await fake.cancelled.wait()
            assert last_event(await whole_stream(on_b, second))["code"] == "response_cancelled"
            assert (await on_a.get(f"/v1/responses/{second}")).json()["status"] == "cancelled"


def worker_pids(server: ServerProcess) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in children.read_text().split()]


async def test_a_run_whose_worker_is_killed_ends_failed_within_the_stale_bound(
    tmp_path: Path, fake: FakeOpenAI, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    _, model = fake_openai
    state = f"sqlite:///{tmp_path / 'state.db'}"
    with ExitStack() as stack:
        server = serve(stack, env_for(model, state), tmp_path / "server.log", "--workers", "1")
        # The whole wait is bounded by the client's timeout: stale bound plus start-up.
        # No kept-alive connection: the one to the killed worker would be dead.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as client:
            response_id = await start(client, fake)
            (worker,) = worker_pids(server)
            os.kill(worker, signal.SIGKILL)
            # gunicorn starts another worker; its heartbeat tick finds the run abandoned.
            raw = await whole_stream(client, response_id)
            ended = (await client.get(f"/v1/responses/{response_id}")).json()
    assert last_event(raw)["type"] == "response.failed"
    assert ended["status"] == "failed"
    assert "worker_lost" in ended["error"]["message"]
    # The events the worker stored before it died are kept (those of its last FLUSH_S may
    # be lost with it): the ending follows them without a gap.
    sequences = [int(field(event, b"id")) for event in events_of(raw)]
    assert sequences == list(range(len(sequences)))
    stored = await rows(state, "SELECT status FROM agent_runs WHERE id = ?", response_id)
    assert stored == [("failed",)]


async def test_sigterm_ends_a_run_that_outlasts_the_drain_failed_with_shutdown(
    tmp_path: Path, fake: FakeOpenAI, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    _, model = fake_openai
    state = f"sqlite:///{tmp_path / 'state.db'}"
    env = env_for(model, state, DRAIN_SECONDS="1")
    with ExitStack() as stack:
        server = serve(stack, env, tmp_path / "server.log", "--workers", "1")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            response_id = await start(client, fake)
            server.process.send_signal(signal.SIGTERM)
            # The run cannot finish (the model is paused): the drain ends it.
            assert server.process.wait(timeout=30) == 0
    found = await rows(state, "SELECT status, body FROM agent_runs WHERE id = ?", response_id)
    assert [status for status, _ in found] == ["failed"]
    error = orjson.loads(found[0][1])["error"]
    assert "shutting down" in error["message"]
    events = await rows(
        state,
        "SELECT event FROM agent_response_events WHERE response_id = ? ORDER BY seq",
        response_id,
    )
    assert events[-1] == ("response.failed",)


async def test_a_conversation_whose_run_lost_its_worker_takes_the_next_turn(
    tmp_path: Path, state_url: str, fake: FakeOpenAI, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    """The run held its conversation's lease (an hour: it has no request deadline); ended
    worker_lost by the next worker, it gives the lease back: the conversation's next turn is
    answered, not refused 409 conversation_locked, and does not continue the failed turn."""
    _, model = fake_openai
    with ExitStack() as stack:
        server = serve(stack, env_for(model, state_url), tmp_path / "server.log", "--workers", "1")
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as client:
            conversation = (await client.post("/v1/conversations", json={})).json()["id"]
            fake.paused.clear()
            started = await client.post(
                "/v1/responses",
                json={
                    "input": "the failed question",
                    "background": True,
                    "conversation": conversation,
                },
            )
            assert started.status_code == 200, started.text
            await fake.paused.wait()
            (worker,) = worker_pids(server)
            os.kill(worker, signal.SIGKILL)
            raw = await whole_stream(client, started.json()["id"])
            assert last_event(raw)["type"] == "response.failed"
            fake.behaviour.pause_after_chunks = None
            answered = await client.post(
                "/v1/responses", json={"input": "a new question", "conversation": conversation}
            )
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "completed"
    asked = [str(m.get("content")) for m in fake.requests[-1].body["messages"]]
    assert any("a new question" in text for text in asked)
    assert not any("failed question" in text for text in asked)
