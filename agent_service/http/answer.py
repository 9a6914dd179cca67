"""The stream loop: agent events → task encoder → SSE, owning every way a stream ends.

- done: the encoder's closing frames, then the framing's end (`[DONE]` or nothing);
- the agent failed, the deadline passed, or the server is shutting down: before the first
  byte the error propagates and becomes a real HTTP status; after it, the encoder's terminal
  error frames — a stream never ends silently;
- the client left (or stopped reading): a normal end, logged at info; leaving the loop
  cancels the run and the model call in flight.
`CancelledError` is never swallowed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from agent_service import errors
from agent_service.events import Event, RunFailed
from agent_service.http.admission import RequestGate, RunScope
from agent_service.http.observer import RunObserver
from agent_service.http.sse import ClientGone, EventStream
from agent_service.protocols.base import Exchange

log = logging.getLogger(__name__)


async def stream_answer(
    stream: EventStream,
    exchange: Exchange,
    events: AsyncIterator[Event],
    observer: RunObserver,
    gate: RequestGate,
) -> web.StreamResponse:
    encoder = exchange.encoder()
    stream.start_heartbeats()
    scope: RunScope | None = None
    try:
        try:
            async with gate.run_scope() as scope:
                async for event in events:
                    await observer.observe(event)
                    frames = encoder.encode(event)
                    if frames:
                        await stream.send(frames)
                        observer.sent(len(frames))
        except ClientGone:
            raise
        except Exception as exc:
            error = observer.stop(stopped_by(scope, exc))
            assert error is not None
            if not stream.started:
                if error is exc:
                    raise
                raise error from exc
            _log_failure(error, exc)
            frames = encoder.encode(RunFailed(error))
            await stream.send(frames)
            observer.sent(len(frames))
        await stream.close()
    except ClientGone as gone:
        observer.stop(gone)
        log.info("Client gone (%s); the agent run was stopped", gone.reason)
    except asyncio.CancelledError as cancelled:
        observer.stop(cancelled)
        raise
    finally:
        observer.finish()
        await stream.stop_heartbeats()
        await _close(events)
    return stream.response


def stopped_by(scope: RunScope | None, exc: Exception) -> Exception:
    """What ended a run: the scope's own error when its deadline fired (or a shutdown pulled
    the deadline in), else the exception itself."""
    if isinstance(exc, TimeoutError) and scope is not None and scope.timeout.expired():
        return scope.error()
    return exc


def _log_failure(error: errors.ServiceError, exc: BaseException) -> None:
    if error.status >= 500 and not isinstance(error, errors.RUN_STOPPED):
        log.error(
            "Stream failed after it started: %s", error.message, exc_info=exc.__cause__ or exc
        )
    else:
        log.warning("Stream ended early: %s", error.message)


async def _close(events: AsyncIterator[Event]) -> None:
    """Stop the agent run now rather than when the generator is garbage-collected."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
