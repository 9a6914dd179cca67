"""Admission and shutdown: how many agent runs a worker takes, and how it stops taking them.

Every agent request enters the gate (refused at once past the concurrency limit, or while
draining) and runs inside a `RunScope`: a deadline that the request's own time limit sets
and that a shutdown can pull in to "now", so one mechanism stops a run for either reason and
the stream loop turns it into the right terminal error.

On SIGTERM (aiohttp's on_shutdown, after the listening sockets closed): readiness turns 503,
new requests on open connections are refused, in-flight requests get DRAIN_SECONDS to
finish, then every run still open is stopped with `server_shutting_down` and given a moment
to send its terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from agent_service import errors
from agent_service.errors import (
    DeadlineExceeded,
    Overloaded,
    RunCancelled,
    ServerShuttingDown,
    ServiceError,
)
from agent_service.keys import ENDPOINTS, GATE, METRICS
from agent_service.settings import STOP_FAREWELL_S

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class RunScope:
    """The time limit of one run; `stop()` ends it now (shutdown)."""

    timeout: asyncio.Timeout
    shutting_down: bool = False
    cancelled: bool = False

    def stop(self) -> None:
        self.shutting_down = True
        self.timeout.reschedule(asyncio.get_running_loop().time())

    def cancel(self) -> None:
        """A background run's cancel: the run ends `cancelled`, by the same path."""
        self.cancelled = True
        self.timeout.reschedule(asyncio.get_running_loop().time())

    def error(self) -> ServiceError:
        """What the client is told when this scope ended the run."""
        if self.cancelled:
            return RunCancelled()
        return ServerShuttingDown() if self.shutting_down else DeadlineExceeded()


@dataclass(slots=True)
class RequestGate:
    limit: int
    deadline_s: float
    in_flight: int = 0
    draining: bool = False
    _scopes: set[RunScope] = field(default_factory=set)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Background runs of this worker: a drain waits for them as for requests.
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._idle.set()

    def enter(self) -> None:
        """Admit one agent request, or refuse it at once."""
        if self.draining:
            raise ServerShuttingDown(headers={"Connection": "close"})
        if self.limit and self.in_flight >= self.limit:
            raise Overloaded(
                f"The server is running its limit of {self.limit} requests; retry shortly.",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def hold(self, task: asyncio.Task[None]) -> None:
        """Count a background run until it ends."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    @contextlib.asynccontextmanager
    async def run_scope(self, deadline_s: float | None = None) -> AsyncIterator[RunScope]:
        """The scope a run executes in. Leaving it by its deadline (the gate's, unless
        given) raises `TimeoutError`; the caller asks the scope which error that means."""
        limit = self.deadline_s if deadline_s is None else deadline_s
        async with asyncio.timeout(limit or None) as timeout:
            scope = RunScope(timeout)
            if self.draining:
                scope.stop()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    async def drain(self, drain_s: float) -> None:
        """Stop admitting, let in-flight requests and background runs finish, then stop
        those still running (a background run then ends `failed`, server_shutting_down:
        no other worker can continue it)."""
        self.draining = True
        if self.in_flight:
            log.info("Draining %d in-flight request(s) for up to %ss", self.in_flight, drain_s)
        if self.background:
            log.info("Draining %d background run(s) for up to %ss", len(self.background), drain_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_s):
                await self._all_done()
        if self.in_flight or self.background:
            log.warning(
                "%d request(s) and %d background run(s) still running after %ss: ending them"
                " with server_shutting_down",
                self.in_flight,
                len(self.background),
                drain_s,
            )
            for scope in list(self._scopes):
                scope.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_FAREWELL_S):
                    await self._all_done()

    async def _all_done(self) -> None:
        await self._idle.wait()
        if self.background:
            await asyncio.wait(set(self.background))


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Agent requests pass the gate: refused at once when the worker is full or draining."""
    if request.match_info.route not in request.app[ENDPOINTS]:
        return await handler(request)
    gate = request.app[GATE]
    metrics = request.app[METRICS]
    try:
        gate.enter()
    except errors.ServiceError as refusal:
        metrics.rejections.labels(refusal.code or "refused").inc()
        raise
    metrics.in_flight.inc()
    try:
        return await handler(request)
    finally:
        gate.leave()
        metrics.in_flight.dec()
