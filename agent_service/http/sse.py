"""Server-Sent Events: frame encoding and a response writer with heartbeats.

Hand-written on purpose: a frame is three byte strings joined, and the writer needs control
that general SSE libraries do not give (wait for the first event before committing to a 200
so early failures keep their real HTTP status; heartbeats from the moment the headers go out;
a bound on how long one write may wait for a client that stopped reading).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from agent_service.jsonio import dumps
from agent_service.protocols.base import Frame

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx and the Databricks Apps proxy buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}
DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"


# A write is bounded in time only when the connection's send buffer is this full: below it,
# aiohttp never waits for the client, and the bound would cost a timer per event for nothing.
_BUFFER_BEFORE_BOUND = 16 * 1024


class ClientGone(Exception):
    """The client closed the connection, or stopped reading it, while we were writing."""

    def __init__(self, reason: str = "client_disconnected") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Framing:
    """How a route frames events: `event:` lines or data-only, `[DONE]` at the end or not."""

    named_events: bool
    done_sentinel: bool

    def encode(self, frames: Iterable[Frame]) -> bytes:
        parts: list[bytes] = []
        for frame in frames:
            if self.named_events and frame.event:
                parts.append(b"event: " + frame.event.encode() + b"\n")
            # A Responses event's id is its sequence number: a client that reconnects says
            # where it stopped (Last-Event-ID), and the stored rest follows.
            sequence = frame.payload.get("sequence_number")
            if type(sequence) is int:
                parts.append(b"id: %d\n" % sequence)
            parts.append(b"data: " + dumps(frame.payload) + b"\n\n")
        return b"".join(parts)

    def closing(self) -> bytes:
        return DONE if self.done_sentinel else b""


# OpenAI and Databricks clients both read data-only frames ending in [DONE].
DATA_ONLY = Framing(named_events=False, done_sentinel=True)
# OpenAI's /v1/responses convention: an `event:` line per event and no [DONE].
NAMED_EVENTS = Framing(named_events=True, done_sentinel=False)


class EventStream:
    """One SSE response. Headers go out on the first write or the first heartbeat, whichever
    comes first; until then the handler may still fail with a real HTTP status."""

    def __init__(
        self,
        request: web.Request,
        framing: Framing,
        *,
        heartbeat_s: float,
        write_timeout_s: float,
    ) -> None:
        self.request = request
        self.framing = framing
        self.response = web.StreamResponse(headers=SSE_HEADERS)
        self._heartbeat_s = heartbeat_s
        self._write_timeout_s = write_timeout_s
        self._start_lock = asyncio.Lock()
        self._last_write = 0.0
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self.response.prepared

    def start_heartbeats(self) -> None:
        if self._heartbeat_s > 0:
            self._heartbeat = asyncio.create_task(self._beat(), name="sse-heartbeat")

    async def stop_heartbeats(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def send(self, frames: list[Frame]) -> None:
        if frames:
            await self._write(self.framing.encode(frames))

    async def close(self) -> None:
        """End the stream normally (the `[DONE]` sentinel where the framing has one)."""
        await self.stop_heartbeats()
        closing = self.framing.closing()
        if closing:
            await self._write(closing)
        await self.response.write_eof()

    async def _write(self, data: bytes) -> None:
        try:
            if not self.response.prepared:
                await self._start()
            transport = self.request.transport
            if transport is None:
                raise ClientGone
            if transport.get_write_buffer_size() + len(data) < _BUFFER_BEFORE_BOUND:
                await self.response.write(data)
            else:
                await self._bounded_write(data, transport)
        except ConnectionError as exc:
            raise ClientGone from exc
        self._last_write = asyncio.get_running_loop().time()

    async def _bounded_write(self, data: bytes, transport: asyncio.Transport) -> None:
        """A client that stops reading must not hold the worker: past the write timeout the
        connection is dropped and the run stopped."""
        try:
            async with asyncio.timeout(self._write_timeout_s):
                await self.response.write(data)
        except TimeoutError:
            transport.abort()
            raise ClientGone("stalled_reader") from None

    async def _start(self) -> None:
        async with self._start_lock:
            if not self.response.prepared:
                # Identity encoding: compressing a stream buffers it.
                await self.response.prepare(self.request)

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_write = loop.time()
        while True:
            idle = loop.time() - self._last_write
            await asyncio.sleep(max(self._heartbeat_s - idle, 0.0))
            if loop.time() - self._last_write >= self._heartbeat_s:
                try:
                    await self._write(PING)
                except ClientGone:
                    # The client left; the handler notices on its own next write or is
                    # cancelled by the server. Nothing more to beat for.
                    return
