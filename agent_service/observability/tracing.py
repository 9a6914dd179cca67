"""MLflow tracing: one trace per request, linked to the running version of the agent, for the
price of a log line on the request path.

Per worker, at start-up (`start_tracer`, off the event loop, bounded in time): point MLflow
at the tracking store, find or create the experiment and this version's LoggedModel
(`tracking_store.py`), open the spool and make sure an export process runs
(`trace_sink.py`), and let MLflow's tracing API used inside the agent write into the
request's trace (`mlflow_bridge.py`). If the store cannot be used the worker logs one clear
error, reports tracing as unavailable in /agent/info and serves untraced: tracing never
fails a request.

Per request (`Tracer.start_request`): plain span objects in the worker (`request_trace.py`),
one line to the spool when the request ends. The export process writes batches to the
store. `Tracer.close` waits (bounded) until this worker's traces are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlflow.tracing.constant import TraceMetadataKey

from agent_service.observability.mlflow_bridge import MlflowBridge
from agent_service.observability.redaction import redact, redact_uri
from agent_service.observability.request_trace import (
    META_BACKEND,
    META_ENDPOINT,
    META_REQUEST_ID,
    META_RESUMES,
    META_TASK,
    RequestFacts,
    RequestTrace,
)
from agent_service.observability.spool import spool_dir_for
from agent_service.observability.trace_record import TraceRecord
from agent_service.observability.trace_sink import ExporterCommand, TraceSink
from agent_service.observability.tracking_store import Connection, connect
from agent_service.settings import Settings

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# After the drain, how long the export process may take to store what is left.
EXPORT_MARGIN_S = 10.0

__all__ = ["RequestFacts", "RequestTrace", "Tracer", "TracingStatus", "start_tracer"]


@dataclass(frozen=True, slots=True)
class TracingStatus:
    """What /agent/info says about tracing."""

    enabled: bool
    available: bool
    destination: str
    experiment_id: str | None = None
    model_id: str | None = None
    version: str | None = None
    sampling_ratio: float = 1.0
    reason: str | None = None
    # MLflow's per-process trace metadata (source, git commit, user, schema version).
    process_metadata: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "available": self.available,
            "destination": self.destination,
            "experiment_id": self.experiment_id,
            "logged_model_id": self.model_id,
            "version": self.version,
            "sampling_ratio": self.sampling_ratio,
            "reason": self.reason,
        }


class Tracer:
    def __init__(
        self,
        status: TracingStatus,
        sink: TraceSink | None = None,
        bridge: MlflowBridge | None = None,
    ) -> None:
        self.status = status
        self.sink = sink
        self._bridge = bridge
        self._on_drop: Callable[[str], None] = lambda reason: None
        metadata = dict(status.process_metadata)
        if status.model_id:
            metadata[TraceMetadataKey.MODEL_ID] = status.model_id
        self._base_metadata = metadata

    @property
    def active(self) -> bool:
        return self.status.available and self.sink is not None

    def count_drops(self, on_drop: Callable[[str], None]) -> None:
        """Report every trace dropped in this worker (by reason) to `on_drop` (the metrics)."""
        self._on_drop = on_drop

    def describe(self) -> dict[str, Any]:
        described = self.status.describe()
        sink = self.sink
        if sink is None:
            return described
        exporter = sink.exporter_status() or {}
        dropped = exporter.get("dropped") or {}
        described["dropped_traces"] = {
            "spool_full": sink.writer.dropped,
            "unserialisable": sink.unserialisable,
            "export_unreadable": int(dropped.get("unreadable", 0)),
            "export_rejected": int(dropped.get("rejected", 0)),
        }
        described["export"] = {
            "path": exporter.get("destination"),
            "exported": exporter.get("exported"),
            "backlog_bytes": exporter.get("backlog_bytes"),
            "failing": exporter.get("error"),
        }
        return described

    def start_request(self, facts: RequestFacts, body: Mapping[str, Any]) -> RequestTrace | None:
        """The trace of one request, or None when tracing is off, unavailable or sampled out."""
        status = self.status
        if not self.active or random.random() >= status.sampling_ratio:  # noqa: S311
            return None
        assert status.experiment_id is not None
        metadata = {
            **self._base_metadata,
            META_REQUEST_ID: facts.request_id,
            META_TASK: facts.task,
            META_BACKEND: facts.backend_kind,
            META_ENDPOINT: facts.backend_endpoint,
        }
        if facts.session_id:
            metadata[TraceMetadataKey.TRACE_SESSION] = facts.session_id
        if facts.user:
            metadata[TraceMetadataKey.TRACE_USER] = facts.user
        if facts.resumes:
            metadata[META_RESUMES] = facts.resumes
        try:
            return RequestTrace(
                facts.task, body, status.experiment_id, metadata, self._submit, self._bridge
            )
        except Exception:
            log.exception("Could not start the trace of this request; serving it untraced")
            return None

    def _submit(self, record: TraceRecord) -> None:
        sink = self.sink
        if sink is None:
            return
        before = (sink.writer.dropped, sink.unserialisable)
        if not sink.submit(record):
            self._on_drop("spool_full" if sink.writer.dropped > before[0] else "unserialisable")

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every trace this worker finished is stored (tests, shutdown)."""
        return self.sink is None or await self.sink.flush(timeout_s)

    async def close(self, drain_s: float = 0.0) -> None:
        """Wait (bounded) until this worker's traces are stored."""
        if self.sink is not None:
            await self.sink.close(drain_s + EXPORT_MARGIN_S)


async def start_tracer(settings: Settings, version: str) -> Tracer:
    destination = redact_uri(settings.tracking_uri)
    if not settings.tracing:
        log.info("Tracing is off (AGENT_TRACING=false)")
        return Tracer(TracingStatus(enabled=False, available=False, destination=destination))
    try:
        connection = await asyncio.wait_for(
            _in_daemon_thread(connect, settings, version),
            timeout=settings.tracing_start_timeout_s,
        )
    except TimeoutError:
        reason = f"the tracking store did not answer within {settings.tracing_start_timeout_s}s"
        return _unavailable(destination, reason, settings)
    except Exception as exc:  # noqa: BLE001 - whatever fails, serve untraced and say why
        # MLflow's messages say what is wrong (bad URI, missing experiment, refused
        # credentials); whatever credential one quotes is masked, like the URI we print.
        return _unavailable(destination, redact(f"{type(exc).__name__}: {exc}"), settings)
    status = _available(settings, destination, version, connection)
    sink = TraceSink(
        spool_dir_for(settings.tracking_uri, settings.trace_spool_dir),
        settings.trace_spool_max_bytes,
        ExporterCommand(
            tracking_uri=settings.tracking_uri,
            drain_s=settings.drain_s + EXPORT_MARGIN_S,
            cpus=settings.trace_exporter_cpus,
            log_level=settings.log_level,
        ),
    )
    await sink.start()
    bridge = MlflowBridge(connection.experiment_id, sink.submit)
    log.info(
        "Tracing to %s, experiment %s, version %s (LoggedModel %s); traces wait in %s",
        destination,
        status.experiment_id,
        status.version,
        status.model_id,
        sink.directory,
    )
    return Tracer(status, sink, bridge)


def _available(
    settings: Settings, destination: str, version: str, connection: Connection
) -> TracingStatus:
    return TracingStatus(
        enabled=True,
        available=True,
        destination=destination,
        experiment_id=connection.experiment_id,
        model_id=connection.model_id,
        version=version,
        sampling_ratio=settings.trace_sampling_ratio,
        process_metadata=connection.process_metadata,
    )


def _in_daemon_thread(function: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
    """Run `function` in a thread of its own. Not the loop's executor: a store that never
    answers keeps MLflow retrying for minutes, and the executor would make the worker wait
    for that at shutdown; a daemon thread is abandoned instead."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def succeed(result: _T) -> None:
        if not future.done():
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
            answer: Callable[[], None] = functools.partial(fail, error)
        else:
            answer = functools.partial(succeed, result)
        # An abandoned thread may finish after the worker's loop has closed: nobody waits
        # for its answer any more, and raising here would only print a traceback.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(answer)

    threading.Thread(target=run, name="mlflow-tracing-start", daemon=True).start()
    return future


def _unavailable(destination: str, reason: str, settings: Settings) -> Tracer:
    log.error(
        "Tracing is UNAVAILABLE: requests will be served but not traced. Could not use the "
        "MLflow tracking store %s: %s",
        destination,
        reason,
    )
    return Tracer(
        TracingStatus(
            enabled=True,
            available=False,
            destination=destination,
            sampling_ratio=settings.trace_sampling_ratio,
            reason=reason,
        )
    )
