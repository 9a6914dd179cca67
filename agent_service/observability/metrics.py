"""Prometheus metrics, correct across gunicorn workers.

Under `agent-server` every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multi-process mode, set up by the master before it forks) and /metrics
sums them, so any worker answers for all. In a single process (tests, `python -m`) values
live in this app's own registry.

Per-stream values (events sent, time to first token) are recorded once when a stream ends,
not per event: a metric update costs more than writing an event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# Latency buckets from 5 ms (a rejected or cached answer) to 5 minutes (a long agent run).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Event loop lag: fine around the tens of milliseconds a request may cost at most, then up
# to the 60 s after which gunicorn kills a stuck worker.
_LOOP_LAG_BUCKETS = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, multiprocess_dir: str = "") -> None:
        self._multiprocess_dir = multiprocess_dir
        self._export: _TraceExportCollector | None = None
        # In multi-process mode values go to files, not to a registry: register nowhere.
        registry = None if multiprocess_dir else CollectorRegistry()
        self._registry = registry
        self.requests = Counter(
            "agent_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "agent_request_duration_seconds",
            "Time from request to the end of the answer (the last event of a stream)",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            "agent_time_to_first_token_seconds",
            "Time from request to the first streamed event with content",
            ["route"],
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "agent_requests_in_flight",
            "Agent requests being answered now",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.receiving = Gauge(
            "agent_requests_receiving",
            "Requests whose body is still arriving (not yet admitted: a slow upload holds a "
            "connection, never a place among MAX_CONCURRENT_REQUESTS)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.stream_events = Counter(
            "agent_stream_events",
            "Server-sent events written (heartbeats excluded)",
            ["route"],
            registry=registry,
        )
        self.upstream_errors = Counter(
            "agent_upstream_errors",
            "Failures of the model endpoint, by kind",
            ["kind"],
            registry=registry,
        )
        self.cancellations = Counter(
            "agent_cancellations",
            "Agent runs stopped before they finished, by reason",
            ["reason"],
            registry=registry,
        )
        self.traces_dropped = Counter(
            "agent_traces_dropped",
            "Traces of answered requests not recorded: spool_full (the export process fell "
            "behind), unserialisable",
            ["reason"],
            registry=registry,
        )
        self.rejections = Counter(
            "agent_rejections",
            "Requests refused before running, by reason",
            ["reason"],
            registry=registry,
        )
        self.loop_lag = Histogram(
            "agent_event_loop_lag_seconds",
            "How late the event loop ran a timer: while it is late, every request and stream "
            "of the worker waits (sampled every few milliseconds)",
            buckets=_LOOP_LAG_BUCKETS,
            registry=registry,
        )
        self.loop_lag_max = Gauge(
            "agent_event_loop_lag_max_seconds",
            "The longest event loop stall a worker has had since it started",
            registry=registry,
            multiprocess_mode="max",
        )

    def watch_trace_export(self, status: Callable[[], Mapping[str, Any] | None]) -> None:
        """Also report what the trace export process says it did (one process for every
        worker: its figures are read from its status file, not summed)."""
        self._export = _TraceExportCollector(status)
        if self._registry is not None:
            self._registry.register(self._export)

    def render(self) -> bytes:
        if self._multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
            if self._export is not None:
                registry.register(self._export)
            return generate_latest(registry)
        assert self._registry is not None
        return generate_latest(self._registry)


class _TraceExportCollector(Collector):
    def __init__(self, status: Callable[[], Mapping[str, Any] | None]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        status = self._status() or {}
        dropped = CounterMetricFamily(
            "agent_trace_export_dropped",
            "Traces the export process could not store: unreadable (a damaged spool line), "
            "rejected (refused by the store)",
            labels=["reason"],
        )
        counts = status.get("dropped") or {}
        for reason in ("unreadable", "rejected"):
            dropped.add_metric([reason], float(counts.get(reason, 0)))
        yield dropped
        yield CounterMetricFamily(
            "agent_traces_exported",
            "Traces the export process stored",
            value=float(status.get("exported") or 0),
        )
        yield GaugeMetricFamily(
            "agent_trace_spool_backlog_bytes",
            "Bytes of finished traces waiting in the spool for the export process",
            value=float(status.get("backlog_bytes") or 0),
        )
        yield GaugeMetricFamily(
            "agent_trace_export_failing",
            "1 while the export process cannot reach the trace store",
            value=1.0 if status.get("error") else 0.0,
        )
