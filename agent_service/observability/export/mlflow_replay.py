"""MLflow's own export of recorded traces: each trace is replayed through MLflow's span SDK,
its span processor and its exporter, with the recorded ids and times, exactly as if the
request had been traced by MLflow in the worker.

This is the export path for whatever the batched writers do not know (a store schema or an
MLflow version they were not checked against, an unknown kind of destination, a trace
holding base64 attachments MLflow extracts) and the reference the contract test compares
them with. It costs what MLflow's export costs (tens of milliseconds a trace), but in the
export process, not in the worker.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import mlflow.tracing.utils as mlflow_tracing_utils
from mlflow.entities import LiveSpan, SpanEvent, SpanStatus, SpanStatusCode, TraceState
from mlflow.tracing import provider as mlflow_provider
from mlflow.tracing.constant import SpanAttributeKey
from mlflow.tracing.trace_manager import InMemoryTraceManager
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

# MLflow's exporter logs a failed export as a warning and carries on; we watch for it.
_EXPORT_LOGGER = "mlflow.tracing.export.mlflow_v3"


class ExportFailed(Exception):
    """MLflow's exporter said it could not send a trace."""


class _RecordedIds(IdGenerator):
    """Hands out the recorded ids of the trace being replayed, in the order spans start."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_ids: list[int] = []

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_ids.pop()


class _Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(("Failed to send trace", "Failed to log")):
            self.count += 1


class MlflowReplay:
    """MLflow's span processor and exporter for `tracking_uri`, fed recorded traces."""

    description = "MLflow's own export (one trace at a time)"

    def __init__(self, tracking_uri: str) -> None:
        # Synchronous export: a trace is stored (or has failed) when its root span ends,
        # so a batch is only taken off the spool once MLflow has written it.
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
        mlflow.set_tracking_uri(tracking_uri)
        if importlib.util.find_spec("numpy") is None:
            # The production install has no numpy, so `mlflow.pyfunc` cannot be imported;
            # MLflow's span processor would try again at every span (16-28 ms each,
            # bench/mlflow_spans.py) to learn what is always None.
            mlflow_tracing_utils._try_get_prediction_context = lambda: None
        self._ids = _RecordedIds()
        self._lock = threading.Lock()
        processor = mlflow_provider._get_mlflow_span_processor(tracking_uri)
        provider = TracerProvider(
            resource=Resource(
                {
                    "telemetry.sdk.language": "python",
                    "telemetry.sdk.name": "mlflow",
                    "telemetry.sdk.version": mlflow.__version__,
                }
            ),
            id_generator=self._ids,
        )
        provider.add_span_processor(processor)
        # Mark MLflow's lazy set-up as done, then put our provider in its place.
        mlflow_provider.provider.once.do_once(lambda: None)
        mlflow_provider.provider.set(provider)

    def close(self) -> None:
        mlflow.flush_trace_async_logging(terminate=True)

    def write(self, lines: Sequence[Mapping[str, Any]]) -> None:
        failures = _Failures()
        logger = logging.getLogger(_EXPORT_LOGGER)
        logger.addHandler(failures)
        try:
            with self._lock:
                for line in lines:
                    self._replay(line)
        finally:
            logger.removeHandler(failures)
        if failures.count:
            raise ExportFailed(f"MLflow's exporter failed {failures.count} time(s)")

    def _replay(self, line: Mapping[str, Any]) -> None:
        spans: list[Mapping[str, Any]] = line["spans"]
        trace_id: str = line["trace_id"]
        self._ids.trace_id = int(trace_id.removeprefix("tr-"), 16)
        self._ids.span_ids = [int(span["id"], 16) for span in reversed(spans)]
        live: dict[str, LiveSpan] = {}
        for raw in spans:
            parent_id = raw["parent"]
            is_root = parent_id is None
            span = mlflow.start_span_no_context(
                raw["name"],
                span_type=raw["type"],
                parent_span=None if is_root else live[parent_id],
                experiment_id=line["experiment_id"] if is_root else None,
                metadata=dict(line["metadata"]) if is_root else None,
                start_time_ns=raw["start"],
            )
            # An explicit start time leaves this attribute; a live span has none.
            otel_span: Any = span._span
            otel_span._attributes.pop(SpanAttributeKey.START_TIME_NS, None)
            for key, value in raw["attributes"].items():
                if raw["encoded"]:
                    otel_span.set_attribute(key, value)
                elif key == SpanAttributeKey.INPUTS:
                    span.set_inputs(value)
                elif key == SpanAttributeKey.OUTPUTS:
                    span.set_outputs(value)
                else:
                    span.set_attribute(key, value)
            for event in raw["events"]:
                span.add_event(
                    SpanEvent(event["name"], event["time"], event["attributes"])  # type: ignore[abstract]
                )
            live[raw["id"]] = span
        for raw in reversed(spans):
            if raw["parent"] is not None:
                _end(live[raw["id"]], raw)
        manager = InMemoryTraceManager.get_instance()  # type: ignore[no-untyped-call]
        with manager.get_trace(trace_id) as trace:
            if trace is not None:
                trace.info.tags.update(line["tags"])
                if line["state"]:
                    trace.info.state = TraceState(line["state"])
                if line["client_request_id"] is not None:
                    trace.info.client_request_id = line["client_request_id"]
                if line["request_preview"]:
                    trace.info.request_preview = line["request_preview"]
                if line["response_preview"]:
                    trace.info.response_preview = line["response_preview"]
        root = next(raw for raw in spans if raw["parent"] is None)
        _end(live[root["id"]], root)


def _end(span: LiveSpan, raw: Mapping[str, Any]) -> None:
    status = raw["status"]
    if status == "ERROR":
        span.end(status=SpanStatus(SpanStatusCode.ERROR, raw["message"]), end_time_ns=raw["end"])
    else:
        span.end(end_time_ns=raw["end"])
