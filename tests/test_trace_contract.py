"""The contract of our export paths: the same requests, exported by our batched writer and by
MLflow's own export (its span SDK, span processor and exporter) into two copies of one
store (a SQLite file; a real MLflow tracking server over REST), read back by MLflow itself,
are the same traces field by field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from mlflow.entities import Trace
from mlflow.tracking import MlflowClient

from agent_service.agents.default_graph import build_graph
from agent_service.agents.tools import select_tools
from agent_service.models.offline import OfflineChatModel, ScriptedToolCall, ScriptedTurn
from agent_service.observability.spool import spool_dir_for
from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.trace_exports import (
    HeldSpool,
    copy_store,
    differences,
    export,
    held_spool,
    mlflow_server,
    stored_traces,
)
from tests.wire import Client, stream

TOOL_THEN_ANSWER = (
    ScriptedTurn(
        text="Let me compute.", tool_calls=(ScriptedToolCall("calculator", {"expression": "6*7"}),)
    ),
    ScriptedTurn(text="It is 42 — «quarante-deux»."),
)
QUESTION = {"messages": [{"role": "user", "content": "What is 6*7? Ünïcode ✓"}]}


@pytest.fixture(autouse=True)
def _registrations(fresh_registrations: None) -> None:
    """The template agent registers its @invoke/@stream functions when imported."""


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "ours.db"


@pytest.fixture
def held(store: Path, tmp_path: Path) -> Iterator[HeldSpool]:
    # Set up before the services, released after they stopped.
    yield from held_spool(f"sqlite:///{store}", tmp_path / "spool")


async def test_our_sqlite_export_reads_back_as_mlflows_own(
    held: HeldSpool,
    store: Path,
    tmp_path: Path,
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
) -> None:
    ours_uri = f"sqlite:///{store}"
    clients = await _serve_the_requests(make_service, _env(ours_uri, tmp_path), fake_openai)

    ours_spool, theirs_spool = tmp_path / "ours-spool", tmp_path / "theirs-spool"
    assert await held.take(clients, ours_spool, theirs_spool) == REQUESTS
    theirs_store = tmp_path / "theirs.db"
    copy_store(store, theirs_store)
    theirs_uri = f"sqlite:///{theirs_store}"

    ours_log = await export(ours_spool, ours_uri, "auto")
    theirs_log = await export(theirs_spool, theirs_uri, "mlflow")
    assert "batched SQLite writer" in ours_log, ours_log
    assert "MLflow's own export" in theirs_log, theirs_log

    await _check_alike(clients[0], ours_uri, theirs_uri)


async def test_our_export_to_a_tracking_server_reads_back_as_mlflows_own(
    tmp_path: Path,
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
) -> None:
    """The real `mlflow server` (REST, its OTLP endpoint), one per copy of the store."""
    store = tmp_path / "ours.db"
    with mlflow_server(f"sqlite:///{store}", tmp_path / "ours") as ours_uri:
        spool = HeldSpool(spool_dir_for(ours_uri, str(tmp_path / "spool")))
        spool.hold()
        try:
            env = _env(ours_uri, tmp_path)
            clients = await _serve_the_requests(make_service, env, fake_openai)
            ours_spool, theirs_spool = tmp_path / "ours-spool", tmp_path / "theirs-spool"
            assert await spool.take(clients, ours_spool, theirs_spool) == REQUESTS
            theirs_store = tmp_path / "theirs.db"
            copy_store(store, theirs_store)
            with mlflow_server(f"sqlite:///{theirs_store}", tmp_path / "theirs") as theirs_uri:
                ours_log = await export(ours_spool, ours_uri, "auto")
                theirs_log = await export(theirs_spool, theirs_uri, "mlflow")
                assert "batched REST writer" in ours_log, ours_log
                assert "MLflow's own export" in theirs_log, theirs_log
                await _check_alike(clients[0], ours_uri, theirs_uri)
            for client in clients:
                await client.close()
        finally:
            spool.release()


# The requests below leave this many traces.
REQUESTS = 5


def _env(tracking_uri: str, tmp_path: Path) -> dict[str, str]:
    return {
        "AGENT_TRACING": "true",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "TRACE_SPOOL_DIR": str(tmp_path / "spool"),
        "MLFLOW_EXPERIMENT_NAME": f"contract-{uuid.uuid4().hex[:8]}",
        "AGENT_VERSION": "v-contract",
    }


async def _serve_the_requests(
    make_service: ServiceFactory,
    env: dict[str, str],
    fake_openai: tuple[FakeOpenAI, TestServer],
) -> list[Client]:
    """LangChain spans with a tool and token usage, JSON and streamed, session, user and
    request id, non-ASCII text; a failing upstream (ERROR); spans the agent opens with
    MLflow's API and its `mlflow.update_current_trace`, on the Responses protocol."""
    graph = build_graph(OfflineChatModel(script=TOOL_THEN_ANSWER), select_tools(("calculator",)))
    tools = await make_service(env, graph=graph)
    body = {**QUESTION, "context": {"conversation_id": "conv-7", "user_id": "ada"}}
    assert (await tools.post("/invocations", json=body, headers={"X-Request-Id": "r-1"})).ok
    await stream(tools, "/invocations", QUESTION)
    fake, server = fake_openai
    fake.behaviour = Behaviour(status=500)
    failing = await make_service({**env, **openai_env(server)})
    assert (await failing.post("/invocations", json=QUESTION)).status == 502
    template = await make_service(
        {
            **env,
            "AGENT_TASK": "agent/v2/chat",
            "AGENT": "examples.template_agent.start_server:app",
        }
    )
    responses_body = {"input": "Hello", "context": {"conversation_id": "conv-42"}}
    assert (await template.post("/v1/responses", json=responses_body)).ok
    await stream(template, "/v1/responses", responses_body)
    return [tools, failing, template]


async def _check_alike(client: Client, ours_uri: str, theirs_uri: str) -> None:
    info = await (await client.get("/agent/info")).json()
    experiment = info["tracing"]["experiment_id"]
    model_id = info["tracing"]["logged_model_id"]

    def read() -> None:
        ours = stored_traces(ours_uri, [experiment])
        theirs = stored_traces(theirs_uri, [experiment])
        assert len(ours) == REQUESTS
        assert set(ours) == set(theirs)
        found: list[str] = []
        for trace_id in sorted(ours):
            found += differences(_read(ours[trace_id]), _read(theirs[trace_id]), trace_id)
            # One trace read on its own (`get_trace`) as well as in a search.
            alone = MlflowClient(ours_uri).get_trace(trace_id)
            reference = MlflowClient(theirs_uri).get_trace(trace_id)
            found += differences(_read(alone), _read(reference), f"get_trace {trace_id}")
        assert not found, "\n".join(found)
        _check_there(ours, model_id)
        # The LoggedModel lists the traces linked to it, in both stores alike.
        linked = _linked_traces(ours_uri, experiment, model_id)
        assert linked == _linked_traces(theirs_uri, experiment, model_id)
        assert linked == set(ours)

    # MLflow's REST client is synchronous; the test's services run on this loop.
    await asyncio.to_thread(read)


def _check_there(ours: dict[str, Trace], model_id: str) -> None:
    """What is compared is there (two empty traces would be equal too)."""
    by_request = {t.info.trace_metadata["agent_service.request_id"]: t for t in ours.values()}
    first = by_request["r-1"]
    assert first.info.trace_metadata["mlflow.trace.session"] == "conv-7"
    assert first.info.trace_metadata["mlflow.trace.user"] == "ada"
    assert first.info.trace_metadata["mlflow.modelId"] == model_id
    assert first.info.token_usage is not None
    assert first.info.token_usage["total_tokens"] > 0
    assert "quarante-deux" in (first.info.response_preview or "")
    assert "What is 6*7" in (first.info.request_preview or "")
    assert {s.name for s in first.data.spans} >= {"agent/v1/chat", "model", "calculator"}
    states = sorted(t.info.state for t in ours.values())
    assert states == ["ERROR", "OK", "OK", "OK", "OK"]
    sessions = [t.info.trace_metadata.get("mlflow.trace.session") for t in ours.values()]
    assert sessions.count("conv-42") == 2, "mlflow.update_current_trace inside the agent"
    assert sum(1 for t in ours.values() for s in t.data.spans if s.name == "prepare") == 2


def _read(trace: Trace) -> dict[str, Any]:
    """What MLflow's reader gives, spans in start order (the store keeps no order)."""
    read = trace.to_dict()
    read["data"]["spans"].sort(key=lambda span: (span["start_time_unix_nano"], span["span_id"]))
    return read


def _linked_traces(uri: str, experiment: str, model_id: str) -> set[str]:
    client = MlflowClient(uri)
    found = client.search_traces(locations=[experiment], model_id=model_id, max_results=500)
    return {trace.info.trace_id for trace in found}
