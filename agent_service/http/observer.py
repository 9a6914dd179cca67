"""Watches one agent run for its trace and the metrics: feeds the task's reducer, counts what
the stream sent, and records how the run ended — once — whether it completed, failed, was
cancelled by the client, hit its deadline or was stopped by a shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractContextManager

from agent_service.errors import RUN_STOPPED, ServiceError, UpstreamError
from agent_service.events import (
    STEP_LIMIT_REASON,
    Event,
    RunEnded,
    RunFailed,
    StepLimitReached,
    TextDelta,
    ToolCallStarted,
)
from agent_service.http.sse import ClientGone
from agent_service.models.upstream import translate
from agent_service.observability.metrics import Metrics
from agent_service.observability.tracing import RequestTrace
from agent_service.protocols.base import Exchange, Reducer, TraceReturn

CLIENT_DISCONNECTED = "client_disconnected"


class RunObserver:
    def __init__(
        self,
        *,
        trace: RequestTrace | None,
        exchange: Exchange,
        trace_return: TraceReturn,
        metrics: Metrics,
        route: str,
        started: float,
    ) -> None:
        self.trace = trace
        # Only a traced run is reduced as it goes: the trace's output is the reduced answer.
        self.reducer: Reducer | None = exchange.reducer() if trace is not None else None
        self._trace_return = trace_return
        self._metrics = metrics
        self._route = route
        self._started = started
        self._first_token_seen = False
        self._events_sent = 0
        self._stopped = False
        # How a run that reached RunEnded ended: completed, or cut short at its step limit.
        self._end_reason = "completed"

    async def observe(self, event: Event) -> None:
        """Record `event`; at the end of the run, end the trace (and fetch it when the client
        asked for it, before the final frame that carries it is written)."""
        if not self._first_token_seen and isinstance(event, TextDelta | ToolCallStarted):
            self._first_token_seen = True
            elapsed = asyncio.get_running_loop().time() - self._started
            self._metrics.first_token.labels(self._route).observe(elapsed)
        if isinstance(event, StepLimitReached):
            self._end_reason = STEP_LIMIT_REASON
            self._metrics.cancellations.labels(STEP_LIMIT_REASON).inc()
        if self.trace is None or self.reducer is None:
            return
        self.reducer.add(event)
        if isinstance(event, RunEnded):
            self.trace.end(self.reducer.result(), reason=self._end_reason)
            if self._trace_return.wants_trace:
                self._trace_return.trace = self.trace.as_returned()

    def activated(self) -> AbstractContextManager[None]:
        """While the agent runs, the request's trace is the current one: spans the agent
        opens with MLflow's API, and `mlflow.update_current_trace`, land in it."""
        return self.trace.activated() if self.trace is not None else contextlib.nullcontext()

    def sent(self, frames: int) -> None:
        self._events_sent += frames

    def finish(self) -> None:
        """The request is over: what the stream sent goes to the metrics in one update."""
        if self._events_sent:
            self._metrics.stream_events.labels(self._route).inc(self._events_sent)

    def stop(self, cause: BaseException) -> ServiceError | None:
        """A run that did not complete: record why and what it produced. Returns the error
        the client should see (None when the client is gone)."""
        reason, error = _ending(cause)
        if self._stopped:
            return error
        self._stopped = True
        if isinstance(error, UpstreamError):
            self._metrics.upstream_errors.labels(error.code or "upstream_error").inc()
        elif error is None or isinstance(error, RUN_STOPPED):
            self._metrics.cancellations.labels(reason).inc()
        if self.trace is not None and self.reducer is not None:
            if error is not None:
                self.reducer.add(RunFailed(error))
            self.trace.end(self.reducer.result(), reason=reason, error=error)
        return error


def _ending(cause: BaseException) -> tuple[str, ServiceError | None]:
    if isinstance(cause, ClientGone):
        return cause.reason, None
    if isinstance(cause, asyncio.CancelledError):
        return CLIENT_DISCONNECTED, None
    error = translate(cause)
    if isinstance(error, RUN_STOPPED):
        return str(error.code), error
    return f"failed: {error.code}", error
