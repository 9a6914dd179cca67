"""BACKGROUND_RESUME=checkpoint across processes: a run whose gunicorn worker is SIGKILLed
mid-answer, or whose instance stops (SIGTERM) before it could finish, is taken over by
another worker and completes there, its stored stream going on without a gap or a repeated
sequence number: the answer being written when the worker stopped ends `incomplete`, the
model call runs again and its answer follows. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.databases import PostgresServer
from tests.fakes.openai_server import FakeOpenAI
from tests.test_background_processes import (
    TOKENS,
    env_for,
    fake,  # noqa: F401  (the fixture)
    serve,
    start,
    whole_stream,
    worker_pids,
)
from tests.test_state_resume import events_of, field

WHOLE_ANSWER = "".join(TOKENS)


def database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


async def started_answering(client: httpx.AsyncClient, model: FakeOpenAI) -> str:
    """A run whose answer is partly written and stored (the model is paused mid-answer)."""
    response_id = await start(client, model)
    while True:  # the worker stores a slow run's events within FLUSH_S
        output = (await client.get(f"/v1/responses/{response_id}")).json()["output"]
        if output and output[0]["content"]:
            return response_id


def payloads(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(field(event, b"data")) for event in events_of(raw)]


def assert_resumed(raw: bytes, final: dict[str, Any]) -> None:
    """One stream, numbered without gaps or repeats, that ends completed: the interrupted
    answer closed as incomplete, the answer of the model call run again after it."""
    events = payloads(raw)
    sequences = [event["sequence_number"] for event in events]
    assert sequences == list(range(len(sequences)))
    assert [int(field(event, b"id")) for event in events_of(raw)] == sequences
    assert events[-1]["type"] == "response.completed"
    assert final["status"] == "completed"
    interrupted, answer = final["output"]
    assert interrupted["status"] == "incomplete"
    assert WHOLE_ANSWER.startswith(interrupted["content"][0]["text"])
    assert answer["status"] == "completed"
    assert answer["content"][0]["text"] == WHOLE_ANSWER
    closed = [
        event["item"]["id"]
        for event in events
        if event["type"] == "response.output_item.done" and event["item"]["status"] == "incomplete"
    ]
    assert closed == [interrupted["id"]]
    assert events[-1]["response"]["output"] == final["output"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_run_whose_worker_is_killed_completes_on_another_worker(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    fake: FakeOpenAI,  # noqa: F811
    fake_openai: tuple[FakeOpenAI, TestServer],
) -> None:
    _, model = fake_openai
    env = env_for(model, database(kind, tmp_path, request), BACKGROUND_RESUME="checkpoint")
    with ExitStack() as stack:
        server = serve(stack, env, tmp_path / "server.log", "--workers", "1")
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as client:
            response_id = await started_answering(client, fake)
            (worker,) = worker_pids(server)
            os.kill(worker, signal.SIGKILL)
            fake.resume.set()
            # gunicorn's new worker finds the run abandoned and goes on with it.
            raw = await whole_stream(client, response_id)
            final = (await client.get(f"/v1/responses/{response_id}")).json()
            assert worker_pids(server) != [worker]
    assert_resumed(raw, final)
    # The model was asked twice: the call in progress ran again, once.
    assert len(fake.requests) == 2


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_sigterm_hands_a_run_back_and_another_instance_completes_it(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    fake: FakeOpenAI,  # noqa: F811
    fake_openai: tuple[FakeOpenAI, TestServer],
) -> None:
    _, model = fake_openai
    env = env_for(
        model, database(kind, tmp_path, request), BACKGROUND_RESUME="checkpoint", DRAIN_SECONDS="1"
    )
    with ExitStack() as stack:
        a = serve(stack, env, tmp_path / "a.log", "--workers", "1")
        b = serve(stack, env, tmp_path / "b.log", "--workers", "1")
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=30) as on_a,
            httpx.AsyncClient(base_url=b.base_url, timeout=30) as on_b,
        ):
            response_id = await started_answering(on_a, fake)
            a.process.send_signal(signal.SIGTERM)
            # The run cannot finish within A's drain (the model is paused): A hands it back.
            assert a.process.wait(timeout=30) == 0
            fake.resume.set()
            raw = await whole_stream(on_b, response_id)
            final = (await on_b.get(f"/v1/responses/{response_id}")).json()
    assert_resumed(raw, final)
    assert len(fake.requests) == 2
