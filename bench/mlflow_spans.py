"""What one span opened with MLflow's API (`mlflow.start_span`) costs inside a traced request,
and how often it looks up MLflow's prediction context, on the install it runs in.

Without numpy (the production install), MLflow's span processor looks the prediction context
up with `from mlflow.pyfunc.context import ...`, which fails, and fails again at every look-up
(tens of milliseconds each). This counts the look-ups our path makes (the bridge,
`agent_service/observability/mlflow_bridge.py`) and times one failing look-up.

`uv run --no-dev` leaves dev packages installed; measure in an environment of its own:

    UV_PROJECT_ENVIRONMENT=/tmp/prod uv sync --frozen --no-dev
    /tmp/prod/bin/python -m bench.mlflow_spans
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import mlflow.tracing.utils as mlflow_tracing_utils

from agent_service.observability.mlflow_bridge import MlflowBridge
from agent_service.observability.request_trace import RequestTrace
from agent_service.observability.trace_record import TraceRecord

SPANS = 2000


def main() -> None:
    mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'unused.db'}")
    kept: list[TraceRecord] = []
    bridge = MlflowBridge("0", kept.append)
    lookups = 0
    lookup: Callable[[], Any] = mlflow_tracing_utils._try_get_prediction_context

    def counted() -> Any:
        nonlocal lookups
        lookups += 1
        return lookup()

    trace = RequestTrace("agent/v1/responses", {"input": "hi"}, "0", {}, kept.append, bridge)
    with trace.activated():
        with mlflow.start_span("warm-up"):
            pass
        mlflow_tracing_utils._try_get_prediction_context = counted
        started = time.perf_counter()
        for _ in range(SPANS):
            with mlflow.start_span("step") as span:
                span.set_inputs({"x": 1})
        elapsed = time.perf_counter() - started
        mlflow_tracing_utils._try_get_prediction_context = lookup
    trace.end({"output": "done"})
    started = time.perf_counter()
    for _ in range(20):
        lookup()
    one_lookup = (time.perf_counter() - started) / 20
    numpy = importlib.util.find_spec("numpy") is not None
    print(
        f"numpy installed: {numpy}; {elapsed / SPANS * 1e6:.0f} µs per span opened with "
        f"mlflow.start_span inside a request; prediction-context look-ups: "
        f"{lookups / SPANS:.2f} per span; one look-up on its own: {one_lookup * 1e6:.0f} µs"
    )


if __name__ == "__main__":
    main()
