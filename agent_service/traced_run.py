"""Follows one agent run for its trace: feeds the task's reducer with the run's events and
ends the trace once — completed, failed, cancelled or abandoned by the client — with the
answer (or the part of it produced so far) as the root span's output."""

from __future__ import annotations

import asyncio

from .errors import ServiceError
from .events import Event, RunEnded, RunFailed
from .sse import ClientGone
from .tasks.base import Exchange, Reducer, TraceReturn
from .tracing import RequestTrace
from .upstream import translate


class TracedRun:
    def __init__(
        self, trace: RequestTrace | None, exchange: Exchange, trace_return: TraceReturn
    ) -> None:
        self.trace = trace
        self.reducer: Reducer = exchange.reducer()
        self._trace_return = trace_return

    async def observe(self, event: Event) -> None:
        """Record `event`; at the end of the run, end the trace (and fetch it when the client
        asked for it, before the final frame that carries it is written)."""
        if self.trace is None:
            return
        self.reducer.add(event)
        if isinstance(event, RunEnded):
            self.trace.end(self.reducer.result())
            if self._trace_return.wants_trace:
                self._trace_return.trace = await self.trace.fetch()

    def stop(self, exc: BaseException) -> None:
        """End the trace of a run that did not complete, with why and what it produced."""
        if self.trace is None:
            return
        reason, error = end_reason(exc)
        if error is not None:
            self.reducer.add(RunFailed(error))
        self.trace.end(self.reducer.result(), reason=reason, error=error)


def end_reason(exc: BaseException) -> tuple[str, ServiceError | None]:
    if isinstance(exc, asyncio.CancelledError | ClientGone):
        return "client_disconnected", None
    error = translate(exc)
    return f"failed: {error.code}", error
