"""The stream loop: agent events → task encoder → SSE, owning the three ways a stream ends.

- done: the encoder's closing frames, then the framing's end (`[DONE]` or nothing);
- agent failed: before the first byte the error propagates and becomes a real HTTP status;
  after it, the encoder's terminal error frames — a stream never ends silently;
- client gone: a normal end, logged at info; the run is cancelled by leaving the loop.
`CancelledError` is never swallowed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import errors
from .events import Event, RunFailed
from .sse import ClientGone, EventStream
from .tasks.base import Exchange
from .traced_run import TracedRun
from .upstream import translate

log = logging.getLogger(__name__)


async def stream_answer(
    stream: EventStream,
    exchange: Exchange,
    events: AsyncIterator[Event],
    traced: TracedRun,
) -> web.StreamResponse:
    encoder = exchange.encoder()
    stream.start_heartbeats()
    try:
        try:
            async for event in events:
                await traced.observe(event)
                await stream.send(encoder.encode(event))
        except ClientGone:
            raise
        except Exception as exc:
            traced.stop(exc)
            error = translate(exc)
            if not stream.started:
                raise error from exc
            _log_failure(error, exc)
            await stream.send(encoder.encode(RunFailed(error)))
        await stream.close()
    except ClientGone as gone:
        traced.stop(gone)
        log.info("Client disconnected; the agent run was stopped")
    except asyncio.CancelledError as cancelled:
        traced.stop(cancelled)
        raise
    finally:
        await stream.stop_heartbeats()
        await _close(events)
    return stream.response


def _log_failure(error: errors.ServiceError, exc: BaseException) -> None:
    cause = exc.__cause__ or exc
    if error.status >= 500:
        log.error("Stream failed after it started: %s", error.message, exc_info=cause)
    else:
        log.warning("Stream failed after it started: %s", error.message)


async def _close(events: AsyncIterator[Event]) -> None:
    """Stop the agent run now rather than when the generator is garbage-collected."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
