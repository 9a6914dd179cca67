"""Prometheus metrics, correct across gunicorn workers.

Under `agent-server` every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multi-process mode, set up by the master before it forks) and /metrics
sums them, so any worker answers for all. In a single process (tests, `python -m`) values
live in this app's own registry.

Per-stream values (events sent, time to first token) are recorded once when a stream ends,
not per event: a metric update costs more than writing an event.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

# Latency buckets from 5 ms (a rejected or cached answer) to 5 minutes (a long agent run).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, multiprocess_dir: str = "") -> None:
        self._multiprocess_dir = multiprocess_dir
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
        self.trace_drops = Counter(
            "agent_trace_drop_episodes",
            "Times MLflow discarded traces because its export queue was full",
            registry=registry,
        )
        self.rejections = Counter(
            "agent_rejections",
            "Requests refused before running, by reason",
            ["reason"],
            registry=registry,
        )

    def render(self) -> bytes:
        if self._multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        assert self._registry is not None
        return generate_latest(self._registry)
