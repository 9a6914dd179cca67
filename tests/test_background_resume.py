"""BACKGROUND_RESUME=checkpoint across processes: a run whose gunicorn worker is SIGKILLed
mid-answer, or whose instance stops (SIGTERM) before it could finish, is taken over by
another worker and completes there, its stored stream going on without a gap or a repeated
sequence number: the answer being written when the worker stopped ends `incomplete`, the
model call runs again and its answer follows. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp.test_utils import TestServer
from mlflow.entities import Trace
from mlflow.tracking import MlflowClient

from agent_service.events import RunEnded, TextDelta, Usage
from agent_service.http.background import FLUSH_S
from agent_service.observability.langchain_spans import END_REASON
from agent_service.observability.request_trace import META_REQUEST_ID, META_RESUMES
from agent_service.protocols.base import RequestContext
from agent_service.protocols.responses import ResponsesTask
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
    # The stored response is what a worker taking over goes on from; the running worker
    # stores a slow run's events within FLUSH_S: read it that often, for a bounded time.
    async with asyncio.timeout(30):
        while True:
            output = (await client.get(f"/v1/responses/{response_id}")).json()["output"]
            if output and output[0]["content"]:
                return response_id
            await asyncio.sleep(FLUSH_S)


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
    traces = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = env_for(
        model,
        database(kind, tmp_path, request),
        BACKGROUND_RESUME="checkpoint",
        DRAIN_SECONDS="1",
        AGENT_TRACING="true",
        MLFLOW_TRACKING_URI=traces,
        MLFLOW_EXPERIMENT_NAME="resumed-runs",
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
        assert b.stop() == 0  # its traces stored first
    assert_resumed(raw, final)
    assert len(fake.requests) == 2
    # Both instances stopped, their traces stored: A's part ended at its shutdown, B's
    # part is a trace of its own, linked to A's by the request id and to the response.
    found = traces_of_run(traces)
    assert len(found) == 2, [(t.info.state, t.info.trace_metadata) for t in found]
    first, resumed = found
    assert first.info.state == "ERROR"
    assert first.data.spans[0].attributes[END_REASON] == "server_shutting_down"
    assert resumed.info.trace_metadata[META_RESUMES] == response_id
    assert META_RESUMES not in first.info.trace_metadata
    request_ids = {t.info.trace_metadata[META_REQUEST_ID] for t in (first, resumed)}
    assert len(request_ids) == 1
    assert resumed.info.state == "OK"
    assert resumed.data.spans[0].attributes[END_REASON] == "completed"
    assert resumed.data.spans[0].outputs["output"] == final["output"]
    assert resumed.data.spans[0].outputs["usage"] == final["usage"]


def traces_of_run(tracking_uri: str) -> list[Trace]:
    """The experiment's traces, oldest first."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("resumed-runs")
    assert experiment is not None
    order = ["timestamp_ms ASC"]
    return list(client.search_traces(locations=[experiment.experiment_id], order_by=order))


def test_a_resumed_runs_usage_counts_the_model_calls_before_the_resume() -> None:
    """The worker that goes on with a run reports the tokens of the calls it made plus those
    the stored response had (the calls the first worker made)."""
    exchange = ResponsesTask().exchange({"input": "Tell me"}, RequestContext("r", "agent"))
    encoder = exchange.encoder()
    before = {
        "status": "in_progress",
        "output": [],
        "usage": {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14},
    }
    encoder.go_on_from(before, 7)
    frames = [
        *encoder.encode(TextDelta("m1", "hi")),
        *encoder.encode(Usage(input_tokens=20, output_tokens=1, total_tokens=21)),
        *encoder.encode(RunEnded()),
    ]
    usage = frames[-1].payload["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (30, 5, 35)
    assert frames[0].payload["sequence_number"] == 7
