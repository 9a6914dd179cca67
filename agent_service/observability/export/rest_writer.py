"""Traces to an MLflow tracking server over REST, a batch at a time.

MLflow's own export sends one OTLP request per span as each span ends, then `StartTraceV3`
when the root ends. Here the spans of a whole batch go in one OTLP request per experiment
(the server stores them as MLflow's own `log_spans` does), then `StartTraceV3` for each
trace of the batch, a few at once over kept-alive connections. The calls, their bodies and
their order are MLflow's own (its `RestStore`), so the server ends with the same rows.

A replayed batch (after an interrupted export) adds no duplicates: the server merges spans
and trace infos it already has, as it does for MLflow's own retries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from mlflow.entities import Span
from mlflow.tracking._tracking_service.utils import _get_store

from agent_service.observability.mlflow_format import MlflowTrace

# Trace infos sent at once: a tracking server handles each in a database transaction.
CONCURRENT_TRACE_INFOS = 8


class SpanLoggingUnsupported(Exception):
    """The server is older than MLflow 3.4 and takes no spans: MLflow's own export uploads
    them as artifacts instead."""


class RestWriter:
    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._store = _get_store(tracking_uri)  # type: ignore[no-untyped-call]
        self._pool = ThreadPoolExecutor(CONCURRENT_TRACE_INFOS, thread_name_prefix="trace-info")

    def close(self) -> None:
        self._pool.shutdown()

    def write(self, traces: Sequence[MlflowTrace]) -> None:
        spans: dict[str, list[Span]] = defaultdict(list)
        for trace in traces:
            spans[trace.experiment_id] += [Span.from_dict(span) for span in trace.span_dicts()]
        for experiment_id, batch in spans.items():
            try:
                self._store.log_spans(experiment_id, batch)
            except NotImplementedError as exc:
                raise SpanLoggingUnsupported(str(exc)) from exc
        # list(): every call's exception is raised here, the batch is not taken off the spool.
        list(self._pool.map(self._store.start_trace, [trace.trace_info() for trace in traces]))
