"""Every answer to an agent request — one JSON body or a stream of events — and every way it
ends, in one place.

`answer` runs the agent and hands each event to the observer (trace, metrics) and to a sink:
`JsonSink` folds the events with the protocol's reducer into one body; `SseSink` encodes
them as the protocol's frames and writes them as they come. `deliver` is the loop itself and
owns the endings, each handled once:

- done: the body, or the encoder's closing frames and the framing's end (`[DONE]` or not);
- the agent failed, the deadline passed, or the server is shutting down: before the first
  byte the error propagates and becomes a real HTTP status (a JSON answer is always before
  its first byte); after it, the encoder's terminal error frames — a stream never ends
  silently;
- the client left (or stopped reading): a normal end, logged at info; leaving the loop
  closes the agent's event iterator, which cancels the run and the model call in flight.
`CancelledError` (the client left while a JSON answer was being made) is recorded and
re-raised, never swallowed.

A sink is all that differs between answers: a run with no HTTP connection (a background
run) is the same loop with a sink that stores its events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web

from agent_service import errors
from agent_service.agents.base import Agent
from agent_service.events import Event, RunEnded, RunFailed
from agent_service.http.admission import RequestGate, RunScope
from agent_service.http.client_log import CLIENT_CLOSED
from agent_service.http.middlewares import log_error
from agent_service.http.observer import RunObserver
from agent_service.http.sse import ClientGone, EventStream
from agent_service.jsonio import dumps, encodable
from agent_service.keys import ENDPOINT, GATE, SETTINGS
from agent_service.protocols.base import Encoder, Exchange, Frame, Reducer
from agent_service.run import AgentRun
from agent_service.state.events import EventRecorder

log = logging.getLogger(__name__)


async def answer(
    request: web.Request,
    agent: Agent,
    exchange: Exchange,
    observer: RunObserver,
    *,
    streamed: bool,
    around: Callable[[AsyncIterator[Event]], AsyncIterator[Event]] | None = None,
    recorder: EventRecorder | None = None,
) -> web.StreamResponse:
    """Run `agent` for `exchange` and answer `request` as it asked: SSE or one JSON body.
    `around` sees the events on their way (a stateful turn keeps what it produced);
    `recorder` keeps a stored response's stream for clients that come back for it."""
    sink: AnswerSink
    events: AsyncIterator[Event]
    if streamed:
        settings = request.app[SETTINGS]
        stream = EventStream(
            request,
            request[ENDPOINT].framing,
            heartbeat_s=settings.sse_heartbeat_s,
            write_timeout_s=settings.sse_write_timeout_s,
        )
        sink = SseSink(stream, exchange.encoder(), observer, recorder)
        events = agent.stream(exchange.run)
    else:
        sink = JsonSink(observer.reducer or exchange.reducer(), shared=observer.reducer is not None)
        events = invoked(agent, exchange.run)
    if around is not None:
        events = around(events)
    return await deliver(events, sink, observer, request.app[GATE])


class AnswerSink(Protocol):
    """Where the events of one run go."""

    @property
    def started(self) -> bool:
        """Whether the client has received anything (after that, errors are in-band)."""

    async def take(self, event: Event) -> None: ...

    async def fail(self, error: errors.ServiceError) -> None:
        """End an answer that already started with the protocol's terminal error."""

    async def finish(self) -> web.StreamResponse:
        """End a complete answer; what the handler returns."""

    def abandoned(self) -> web.StreamResponse:
        """What the handler returns when the client left before the end."""

    async def close(self) -> None:
        """Release what the sink holds, however the answer ended."""


async def deliver(
    events: AsyncIterator[Event],
    sink: AnswerSink,
    observer: RunObserver,
    gate: RequestGate,
    *,
    deadline_s: float | None = None,
    scoped: Callable[[RunScope], None] | None = None,
) -> web.StreamResponse:
    """The loop: events → observer and sink, inside the run's scope; every ending once.
    `deadline_s` replaces the request deadline; `scoped` is handed the scope (to cancel)."""
    scope: RunScope | None = None
    try:
        try:
            with observer.activated():
                async with gate.run_scope(deadline_s) as scope:
                    if scoped is not None:
                        scoped(scope)
                    async for event in events:
                        await observer.observe(event)
                        await sink.take(event)
        except ClientGone:
            raise
        except Exception as exc:
            error = observer.stop(stopped_by(scope, exc))
            assert error is not None
            if error is not exc and error.__cause__ is None:
                error.__cause__ = exc  # what the log shows for a failure of ours
            if not sink.started:
                if error is exc:
                    raise
                raise error from exc
            log_error(error, mid_stream=True)
            await sink.fail(error)
        return await sink.finish()
    except ClientGone as gone:
        observer.stop(gone)
        log.info("Client gone (%s); the agent run was stopped", gone.reason)
        return sink.abandoned()
    except asyncio.CancelledError as cancelled:
        observer.stop(cancelled)
        raise
    finally:
        observer.finish()
        await sink.close()
        await _close(events)


async def invoked(agent: Agent, run: AgentRun) -> AsyncIterator[Event]:
    """The events of `agent.invoke`, as an iterator: the loop is the same for both answers."""
    for event in await agent.invoke(run):
        yield event


class JsonSink:
    """Events → the protocol's reducer → one JSON body."""

    started = False

    def __init__(self, reducer: Reducer, *, shared: bool) -> None:
        self._reducer = reducer
        # A traced run shares the observer's reducer (the trace's output is the body): the
        # observer already folds each event into it.
        self._shared = shared

    async def take(self, event: Event) -> None:
        if not self._shared:
            self._reducer.add(event)

    async def fail(self, error: errors.ServiceError) -> None:
        raise AssertionError("a JSON answer fails before its first byte, as an HTTP status")

    async def finish(self) -> web.StreamResponse:
        return json_response(self._reducer.result())

    def abandoned(self) -> web.StreamResponse:
        # Only a stream notices a departed client by writing; listed for completeness.
        return web.Response(status=CLIENT_CLOSED)

    async def close(self) -> None:
        return None


class SseSink:
    """Events → the protocol's encoder → frames on a Server-Sent Events stream."""

    def __init__(
        self,
        stream: EventStream,
        encoder: Encoder,
        observer: RunObserver,
        recorder: EventRecorder | None = None,
    ) -> None:
        self._stream = stream
        self._encoder = encoder
        self._observer = observer
        self._recorder = recorder
        stream.start_heartbeats()

    @property
    def started(self) -> bool:
        return self._stream.started

    async def take(self, event: Event) -> None:
        await self._send(self._encoder.encode(event), final=isinstance(event, RunEnded))

    async def fail(self, error: errors.ServiceError) -> None:
        # The protocol's terminal frames carry the answer so far (a Responses `response.failed`
        # has its output and custom outputs): made encodable, they go out whatever it holds.
        frames = self._encoder.encode(RunFailed(error))
        await self._send([Frame(encodable(f.payload), f.event) for f in frames], final=True)

    async def finish(self) -> web.StreamResponse:
        await self._stream.close()
        return self._stream.response

    def abandoned(self) -> web.StreamResponse:
        return self._stream.response

    async def close(self) -> None:
        await self._stream.stop_heartbeats()

    async def _send(self, frames: list[Frame], *, final: bool = False) -> None:
        if self._recorder is not None:
            # Stored before sent: what a client saw can always be read again.
            await self._recorder.add([(f.event or "", f.payload) for f in frames], final=final)
        if frames:
            await self._stream.send(frames)
            self._observer.sent(len(frames))


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def stopped_by(scope: RunScope | None, exc: Exception) -> Exception:
    """What ended a run: the scope's own error when its deadline fired (or a shutdown pulled
    the deadline in), else the exception itself."""
    if isinstance(exc, TimeoutError) and scope is not None and scope.timeout.expired():
        return scope.error()
    return exc


async def _close(events: AsyncIterator[Event]) -> None:
    """Stop the agent run now rather than when the generator is garbage-collected."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
