"""MLflow's tracing API inside the agent, writing into the request's trace.

An agent may use MLflow's own API: `@mlflow.trace`, `mlflow.start_span`,
`mlflow.update_current_trace`, `mlflow.langchain.autolog()`. Those spans must nest under the
request's root span and those updates must reach the request's trace, but the request is not
traced with MLflow's span SDK (that costs a quarter of a millisecond a span, on the event
loop). So:

- the request's root is MLflow's current span (a small stand-in, `_RootInContext`, set in
  MLflow's context variable: about a microsecond a request);
- the first time MLflow looks at the request (a span starts under the root, or the agent
  asks for the current span), the request is registered with MLflow's in-memory trace
  manager, the way MLflow registers its own traces, and MLflow's span processor records the
  agent's spans and updates from then on;
- when the request ends, whatever MLflow recorded is taken out of MLflow's manager and
  merged into the request's trace: the agent's spans (as MLflow encoded them), its tags,
  metadata, state, client request id and previews.

A request that never touches MLflow's API costs the context variable and nothing else.
Traces the agent starts outside a request (a root span of its own) go to the spool too.

This leans on MLflow internals (`mlflow.tracing.provider`, `InMemoryTraceManager`); the
tests in `tests/test_trace_bridge.py` say when an MLflow upgrade moves them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import mlflow
from mlflow.entities import LiveSpan, Span, TraceInfo, TraceLocation, TraceState
from mlflow.tracing import provider as mlflow_provider
from mlflow.tracing.constant import SpanAttributeKey
from mlflow.tracing.processor.mlflow_v3 import MlflowV3SpanProcessor
from mlflow.tracing.trace_manager import InMemoryTraceManager, ManagerTrace
from opentelemetry import trace as otel
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.util.types import Attributes

from agent_service.observability.trace_record import SpanRecord, TraceRecord

log = logging.getLogger(__name__)

_RESOURCE = Resource(
    {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "mlflow",
        "telemetry.sdk.version": mlflow.__version__,
    }
)


def _manager() -> InMemoryTraceManager:
    manager: InMemoryTraceManager = InMemoryTraceManager.get_instance()  # type: ignore[no-untyped-call]
    return manager


class BridgedRequest:
    """What the bridge knows about one request's trace."""

    __slots__ = ("_lock", "context", "experiment_id", "name", "registered", "start_ns", "trace_id")

    def __init__(self, record: TraceRecord, root: SpanRecord) -> None:
        self.trace_id = record.trace_id
        self.experiment_id = record.experiment_id
        self.name = root.name
        self.start_ns = root.start_ns
        self.context = SpanContext(
            record.otel_trace_id, root.span_id, False, TraceFlags(TraceFlags.SAMPLED)
        )
        self.registered = False
        self._lock = threading.Lock()

    def register(self) -> None:
        """Register the request with MLflow's trace manager (once)."""
        if self.registered:
            return
        with self._lock:
            if self.registered:
                return
            info = TraceInfo(
                trace_id=self.trace_id,
                trace_location=TraceLocation.from_experiment_id(self.experiment_id),
                request_time=self.start_ns // 1_000_000,
                state=TraceState.IN_PROGRESS,
                trace_metadata={},
                tags={},
            )
            manager = _manager()
            manager.register_trace(self.context.trace_id, info)
            root = _Root(self.name, context=self.context, parent=None, resource=_RESOURCE)
            root.start(start_time=self.start_ns)
            manager.register_span(LiveSpan(root, self.trace_id))
            self.registered = True


class _Root(SdkSpan):
    """MLflow's view of the request's root span, made when the request is registered.
    (OpenTelemetry wants spans made by a tracer; this one is never exported.)"""


class _RootInContext(otel.Span):
    """The request's root as MLflow's current span: enough of a span for MLflow to nest new
    spans under it and to find the trace when asked."""

    def __init__(self, request: BridgedRequest) -> None:
        self._request = request

    @property
    def context(self) -> SpanContext:
        return self._request.context

    @property
    def attributes(self) -> dict[str, str]:
        # MLflow reads this to find the trace of the current span: register it now.
        self._request.register()
        return {SpanAttributeKey.REQUEST_ID: json.dumps(self._request.trace_id)}

    def get_span_context(self) -> SpanContext:
        return self._request.context

    def is_recording(self) -> bool:
        return True

    def set_attributes(self, attributes: Any) -> None:
        pass

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def set_status(self, status: Any, description: str | None = None) -> None:
        pass

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        pass

    def end(self, end_time: int | None = None) -> None:
        pass


class _BridgeProcessor(MlflowV3SpanProcessor):
    """MLflow's span processor, registering a request the first time a span starts in it."""

    def __init__(self, bridge: MlflowBridge, exporter: SpanExporter) -> None:
        super().__init__(exporter, export_metrics=False)
        self._bridge = bridge

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        if span.parent is not None:
            request = self._bridge.live.get(span.context.trace_id)
            if request is not None:
                request.register()
        super().on_start(span, parent_context)


class _StandaloneExporter(SpanExporter):
    """Receives the spans MLflow's processor exports: only traces the agent started on its
    own (outside a request) end with a root span here; they go to the spool."""

    def __init__(self, bridge: MlflowBridge) -> None:
        self._bridge = bridge

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            if span.parent is None:
                self._bridge.export_standalone(span.context.trace_id)
        return SpanExportResult.SUCCESS


class MlflowBridge:
    """Installed once per worker, after MLflow points at the tracking store."""

    def __init__(self, experiment_id: str, spool: Callable[[TraceRecord], object]) -> None:
        self.experiment_id = experiment_id
        self.live: dict[int, BridgedRequest] = {}
        self._spool = spool
        provider = TracerProvider(resource=_RESOURCE)
        provider.add_span_processor(_BridgeProcessor(self, _StandaloneExporter(self)))
        # Mark MLflow's lazy set-up as done (it would install MLflow's own exporter), then
        # put ours in its place.
        mlflow_provider.provider.once.do_once(lambda: None)
        mlflow_provider.provider.set(provider)

    def enter(self, record: TraceRecord, root: SpanRecord) -> BridgedRequest:
        """Follow a request: spans MLflow starts in its trace are recorded into it."""
        request = BridgedRequest(record, root)
        self.live[record.otel_trace_id] = request
        return request

    @contextlib.contextmanager
    def current(self, request: BridgedRequest) -> Iterator[None]:
        """The request's root as MLflow's current span (in this task, and in tasks and
        threads started with a copy of its context)."""
        runtime = mlflow_provider.mlflow_runtime_context
        token = runtime.attach(
            otel.set_span_in_context(_RootInContext(request), runtime.get_current())
        )
        try:
            yield
        finally:
            runtime.detach(token)

    def leave(self, record: TraceRecord, request: BridgedRequest) -> None:
        """Merge what MLflow recorded for the request into its trace."""
        self.live.pop(record.otel_trace_id, None)
        if not request.registered:
            return
        taken = _manager().pop_trace(record.otel_trace_id)
        if taken is not None:
            _merge(record, taken, root_id=request.context.span_id)

    def export_standalone(self, otel_trace_id: int) -> None:
        if otel_trace_id in self.live:
            return
        taken = _manager().pop_trace(otel_trace_id)
        if taken is None:
            return
        info = taken.trace.info
        record = TraceRecord(
            otel_trace_id=otel_trace_id,
            experiment_id=info.experiment_id or self.experiment_id,
            metadata=dict(info.trace_metadata),
            spans=[_record_of(span) for span in taken.trace.data.spans],
            tags=dict(info.tags),
            state=info.state.value if info.state != TraceState.IN_PROGRESS else None,
            client_request_id=info.client_request_id,
        )
        self._spool(record)


def _merge(record: TraceRecord, taken: ManagerTrace, *, root_id: int) -> None:
    info = taken.trace.info
    record.tags.update(info.tags)
    record.metadata.update(info.trace_metadata)
    if info.state not in (TraceState.IN_PROGRESS, TraceState.STATE_UNSPECIFIED):
        record.state = info.state.value
    if info.client_request_id is not None:
        record.client_request_id = info.client_request_id
    if info.request_preview:
        record.request_preview = info.request_preview
    if info.response_preview:
        record.response_preview = info.response_preview
    for span in taken.trace.data.spans:
        if int(span.span_id, 16) == root_id:
            continue  # MLflow's view of our root: ours is the record
        record.spans.append(_record_of(span))


def _record_of(span: Span) -> SpanRecord:
    """A span MLflow recorded, as it encoded it."""
    data = span.to_dict()
    parent = span.parent_id
    record = SpanRecord(
        span.name,
        span.span_type or "UNKNOWN",
        None if parent is None else int(parent, 16),
        span_id=int(span.span_id, 16),
        start_ns=span.start_time_ns,
    )
    record.end_ns = span.end_time_ns
    record.status = span.status.status_code.value
    record.status_message = span.status.description or ""
    record.attributes = dict(data["attributes"])
    record.events = [
        {"name": event["name"], "time": event["time_unix_nano"], "attributes": event["attributes"]}
        for event in data["events"]
    ] or None
    record.encoded = True
    return record
