"""MLflow tracing: one trace per request, linked to the running version of the agent.

Per worker, at start-up (`start_tracer`, off the event loop, bounded in time): point MLflow
at the tracking store, find or create the experiment, find or create the LoggedModel named
after this version. If any of that fails the worker logs one clear error, reports tracing as
unavailable in /agent/info and serves untraced: tracing never fails a request.

Per request (`Tracer.start_request`): a root span of type AGENT named after the task, whose
inputs are the validated request and whose outputs are the answer as the task's reducer
builds it; child spans come from `SpanRecorder`. MLflow exports finished traces from its own
worker threads; `Tracer.close` flushes them at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.entities import LiveSpan, LoggedModelStatus, SpanStatusCode, SpanType
from mlflow.entities.span import NoOpSpan
from mlflow.tracing.constant import TraceMetadataKey
from mlflow.tracing.provider import safe_set_span_in_context
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

from agent_service.errors import ServiceError
from agent_service.observability.span_recorder import SpanRecorder
from agent_service.settings import Settings

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Trace metadata keys of our own, next to MLflow's session/user/model keys.
META_REQUEST_ID = "agent_service.request_id"
META_TASK = "agent_service.task"
META_BACKEND = "agent_service.model_backend"
META_ENDPOINT = "agent_service.model_endpoint"
ATTR_END_REASON = "agent_service.end_reason"


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


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a trace records about a request besides its body."""

    task: str
    request_id: str
    backend_kind: str
    backend_endpoint: str
    session_id: str | None = None
    user: str | None = None


class Tracer:
    def __init__(self, status: TracingStatus) -> None:
        self.status = status
        # Times MLflow said its export queue was full and it discarded traces (it says so at
        # most every 30 s, so this counts episodes, not traces).
        self.drop_episodes = 0
        self._drop_watch: _DropWatch | None = None

    def describe(self) -> dict[str, Any]:
        return {**self.status.describe(), "dropped_trace_episodes": self.drop_episodes}

    def watch_drops(self, on_drop: Callable[[], None]) -> None:
        """Make MLflow's only sign of discarded traces loud: an ERROR line, /agent/info,
        the metrics."""
        if self.status.available:
            self._drop_watch = _DropWatch(self, on_drop)
            logging.getLogger(_EXPORT_QUEUE_LOGGER).addHandler(self._drop_watch)

    @property
    def active(self) -> bool:
        return self.status.available

    def start_request(self, facts: RequestFacts, body: Mapping[str, Any]) -> RequestTrace | None:
        """The trace of one request, or None when tracing is off, unavailable or sampled out."""
        status = self.status
        if not status.available or random.random() >= status.sampling_ratio:  # noqa: S311
            return None
        metadata = {
            META_REQUEST_ID: facts.request_id,
            META_TASK: facts.task,
            META_BACKEND: facts.backend_kind,
            META_ENDPOINT: facts.backend_endpoint,
        }
        if status.model_id:
            metadata[TraceMetadataKey.MODEL_ID] = status.model_id
        if facts.session_id:
            metadata[TraceMetadataKey.TRACE_SESSION] = facts.session_id
        if facts.user:
            metadata[TraceMetadataKey.TRACE_USER] = facts.user
        try:
            root = mlflow.start_span_no_context(
                facts.task,
                span_type=SpanType.AGENT,
                inputs=_without_nulls(body),
                metadata=metadata,
                experiment_id=status.experiment_id,
            )
        except Exception:
            log.exception("Could not start the trace of this request; serving it untraced")
            return None
        if isinstance(root, NoOpSpan) or not root.trace_id:
            return None  # MLflow's own sampling (MLFLOW_TRACE_SAMPLING_RATIO) dropped it
        return RequestTrace(root)

    async def close(self) -> None:
        """Flush traces still being exported (at shutdown: SIGTERM loses none)."""
        if self._drop_watch is not None:
            logging.getLogger(_EXPORT_QUEUE_LOGGER).removeHandler(self._drop_watch)
        if self.status.available:
            await asyncio.to_thread(mlflow.flush_trace_async_logging)


_EXPORT_QUEUE_LOGGER = "mlflow.tracing.export.async_export_queue"


class _DropWatch(logging.Handler):
    def __init__(self, tracer: Tracer, on_drop: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self._tracer = tracer
        self._on_drop = on_drop

    def emit(self, record: logging.LogRecord) -> None:
        if "queue is full" not in record.getMessage():
            return
        self._tracer.drop_episodes += 1
        self._on_drop()
        log.error(
            "Traces are being DISCARDED: MLflow's export queue is full because the tracking "
            "store (%s) cannot keep up with the traffic. Use a faster store (an MLflow "
            "tracking server, Databricks) or lower TRACE_SAMPLING_RATIO.",
            self._tracer.status.destination,
        )


class RequestTrace:
    """The root span of one request and the recorder of its children."""

    def __init__(self, root: LiveSpan) -> None:
        self._root = root
        self.recorder = SpanRecorder(root)
        self._ended = False

    @property
    def trace_id(self) -> str:
        return str(self._root.trace_id)

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """The root span as the current span (in this task, and in threads started with a
        copy of its context): what the agent's own MLflow spans nest under."""
        with safe_set_span_in_context(self._root):
            yield

    def end(
        self, output: Any, *, reason: str = "completed", error: ServiceError | None = None
    ) -> None:
        """End the trace: OK when the run completed, ERROR (with the partial output and the
        reason) when it failed, was cancelled or timed out. Never raises."""
        if self._ended:
            return
        self._ended = True
        try:
            self.recorder.close_all(reason)
            attributes: dict[str, Any] = {ATTR_END_REASON: reason}
            if error is not None:
                attributes["agent_service.error_code"] = error.code
                attributes["agent_service.error_message"] = error.message
            status = SpanStatusCode.OK if reason == "completed" else SpanStatusCode.ERROR
            self._root.end(outputs=output, attributes=attributes, status=status)
        except Exception:
            log.exception("Could not end the trace of this request")

    async def fetch(self) -> dict[str, Any] | None:
        """The whole trace as MLflow stores it (for `databricks_options.return_trace`)."""
        trace = await asyncio.to_thread(mlflow.get_trace, self.trace_id, silent=True, flush=True)
        return None if trace is None else trace.to_dict()


async def start_tracer(settings: Settings, version: str) -> Tracer:
    destination = redact_uri(settings.tracking_uri)
    if not settings.tracing:
        log.info("Tracing is off (AGENT_TRACING=false)")
        return Tracer(TracingStatus(enabled=False, available=False, destination=destination))
    try:
        status = await asyncio.wait_for(
            _in_daemon_thread(connect, settings, version),
            timeout=settings.tracing_start_timeout_s,
        )
    except TimeoutError:
        reason = f"the tracking store did not answer within {settings.tracing_start_timeout_s}s"
        return _unavailable(destination, reason, settings)
    except Exception as exc:  # noqa: BLE001 - whatever fails, serve untraced and say why
        # MLflow's messages say what is wrong (bad URI, missing experiment, refused
        # credentials) and do not carry secrets; the URI we print is redacted.
        return _unavailable(destination, f"{type(exc).__name__}: {exc}", settings)
    log.info(
        "Tracing to %s, experiment %s, version %s (LoggedModel %s)",
        destination,
        status.experiment_id,
        status.version,
        status.model_id,
    )
    return Tracer(status)


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
            loop.call_soon_threadsafe(fail, error)
        else:
            loop.call_soon_threadsafe(succeed, result)

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


def connect(settings: Settings, version: str) -> TracingStatus:
    """Point MLflow at the store; find or create the experiment and this version's
    LoggedModel. Blocking: a worker runs it in a thread at start-up."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    with _store_lock(settings.tracking_uri):
        client = MlflowClient(settings.tracking_uri)
        experiment_id = _experiment(client, settings)
        model_id = _logged_model(client, experiment_id, version)
    return TracingStatus(
        enabled=True,
        available=True,
        destination=redact_uri(settings.tracking_uri),
        experiment_id=experiment_id,
        model_id=model_id,
        version=version,
        sampling_ratio=settings.trace_sampling_ratio,
    )


def _experiment(client: MlflowClient, settings: Settings) -> str:
    if settings.experiment_id:
        return str(client.get_experiment(settings.experiment_id).experiment_id)
    name = settings.experiment_name or settings.agent_name
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name))


def _logged_model(client: MlflowClient, experiment_id: str, name: str) -> str:
    """The LoggedModel of this version: found by name, or created (once per version)."""
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"name = '{name}'", max_results=1
    )
    if found:
        return str(found[0].model_id)
    model = client.create_logged_model(
        experiment_id, name=name, tags={MLFLOW_MODEL_IS_EXTERNAL: "true"}, model_type="agent"
    )
    # The code lives outside MLflow (this repository): nothing to upload, ready at once.
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    log.info("Created LoggedModel %s (%s)", name, model.model_id)
    return str(model.model_id)


@contextlib.contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise workers creating one SQLite store: two processes running its schema
    migrations at once break it."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def redact_uri(uri: str) -> str:
    """The URI without the password a user may have put in it."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
