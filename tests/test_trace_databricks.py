"""Traces to Databricks (`MLFLOW_TRACKING_URI=databricks`), against a fake workspace: our export
and MLflow's own, of the same recorded traces, leave the same traces in the workspace, MLflow
reads ours back, and ours does not probe the host's metadata for every trace."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY
from mlflow.tracing.utils.environment import resolve_env_metadata
from mlflow.tracking import MlflowClient
from pytest_aiohttp import AiohttpServer

from agent_service.observability.export.databricks_writer import CONCURRENT_TRACES
from agent_service.observability.spool import SpoolWriter
from agent_service.observability.trace_record import SpanRecord, TraceRecord, new_trace_id
from tests.fakes.databricks_workspace import PAT, FakeWorkspace
from tests.trace_exports import differences, export

TRACES = 2 * CONCURRENT_TRACES + 3
HOST_METADATA = "/.well-known/databricks-config"


def _recorded(number: int) -> TraceRecord:
    """A request's trace as a worker records it: the root, a chat model call with its token
    usage, a tool that failed."""
    root = SpanRecord("agent/v1/responses", "AGENT", None)
    root.attributes["mlflow.spanInputs"] = {"input": f"question {number} — ✓"}
    model = SpanRecord("model", "CHAT_MODEL", root.span_id)
    model.attributes["mlflow.chat.tokenUsage"] = {
        "input_tokens": 3,
        "output_tokens": 5,
        "total_tokens": 8,
    }
    model.attributes["mlflow.spanOutputs"] = {"role": "assistant", "content": "It is 42."}
    model.end()
    tool = SpanRecord("calculator", "TOOL", root.span_id)
    tool.add_event("exception", {"exception.type": "ValueError"})
    tool.end("ERROR", "ValueError")
    root.attributes["mlflow.spanOutputs"] = {"output_text": "It is 42."}
    root.end()
    # What a worker puts in every trace's metadata (`tracking_store.connect`).
    metadata = {str(key): str(value) for key, value in resolve_env_metadata().items()}
    metadata[TRACE_SCHEMA_VERSION_KEY] = str(TRACE_SCHEMA_VERSION)
    metadata |= {"agent_service.request_id": f"r-{number}", "mlflow.trace.user": "ada"}
    return TraceRecord(new_trace_id(), "1234567", metadata, [root, model, tool])


async def _workspace(aiohttp_server: AiohttpServer) -> tuple[FakeWorkspace, TestServer]:
    workspace = FakeWorkspace()
    return workspace, await aiohttp_server(workspace.app())


def _use(monkeypatch: pytest.MonkeyPatch, server: TestServer) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", str(server.make_url("")).rstrip("/"))
    monkeypatch.setenv("DATABRICKS_TOKEN", PAT)
    monkeypatch.delenv("DATABRICKS_CLIENT_ID", raising=False)
    monkeypatch.delenv("DATABRICKS_CLIENT_SECRET", raising=False)


def _as_stored(workspace: FakeWorkspace, trace_id: str) -> dict[str, Any]:
    info = dict(workspace.trace_infos[trace_id])
    info["tags"] = {k: v for k, v in info["tags"].items() if k != "mlflow.artifactLocation"}
    return {"info": info, "spans": workspace.spans(trace_id)}


async def test_traces_reach_databricks_as_mlflow_sends_them(
    aiohttp_server: AiohttpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ours_spool, theirs_spool = tmp_path / "ours", tmp_path / "theirs"
    writer = SpoolWriter(ours_spool, 64 * 1024 * 1024)
    records = [_recorded(number) for number in range(TRACES)]
    for record in records:
        assert writer.append(record.to_line())
    writer.close()
    shutil.copytree(ours_spool, theirs_spool)

    ours, ours_server = await _workspace(aiohttp_server)
    theirs, theirs_server = await _workspace(aiohttp_server)
    _use(monkeypatch, ours_server)
    log = await export(ours_spool, "databricks", "auto")
    assert "Databricks writer" in log, log
    _use(monkeypatch, theirs_server)
    log = await export(theirs_spool, "databricks", "mlflow")
    assert "MLflow's own export" in log, log

    ids = [record.trace_id for record in records]
    assert sorted(ours.trace_infos) == sorted(theirs.trace_infos) == sorted(ids)
    for trace_id in ids:
        found = differences(_as_stored(ours, trace_id), _as_stored(theirs, trace_id))
        assert found == [], "\n".join(found)

    # The same three calls a trace; the host's metadata probed twice a trace by MLflow's
    # export, a few times in all by ours (credentials resolved once, the first concurrent
    # calls each building MLflow's cached workspace client).
    for route in ("/api/3.0/mlflow/traces", "/signed/traces/{trace_id}/traces.json"):
        assert ours.calls[route] == theirs.calls[route] == TRACES
    assert theirs.calls[HOST_METADATA] >= 2 * TRACES
    assert ours.calls[HOST_METADATA] <= CONCURRENT_TRACES + 2

    # MLflow's own client reads our traces back from the workspace (in a thread: the fake
    # workspace answers on this event loop).
    _use(monkeypatch, ours_server)
    trace = await asyncio.to_thread(MlflowClient("databricks").get_trace, ids[0])
    assert trace.info.trace_metadata["agent_service.request_id"] == "r-0"
    assert trace.info.token_usage == {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
    assert [span.name for span in trace.data.spans] == ["agent/v1/responses", "model", "calculator"]
    assert trace.data.spans[2].status.status_code == "ERROR"
