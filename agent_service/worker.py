"""The gunicorn worker: aiohttp's, with a drain before it stops.

On SIGTERM aiohttp's worker stops listening at once and gives running handlers a grace
period. Ours first drains while still listening: /ready answers 503 (so a load balancer
takes the worker out of rotation), new agent requests are refused with 503
`server_shutting_down`, running ones get DRAIN_SECONDS to finish, and streams still open
after that end with a terminal error event. Then aiohttp's normal shutdown runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING

from aiohttp.worker import GunicornWebWorker

if TYPE_CHECKING:
    from aiohttp import web

# gunicorn's master imports this module to find the worker class; it must not import the
# app (workers import it after the fork, and again after a reload).


class AgentWorker(GunicornWebWorker):
    _app: web.Application | None = None
    _drain: asyncio.Task[None] | None = None

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # gunicorn types `wsgi` as a WSGI callable; for this worker it is our app factory.
        factory: Callable[[], Awaitable[web.Application]] = self.wsgi  # type: ignore[assignment]

        async def build_and_keep() -> web.Application:
            # The worker needs the app to drain it; aiohttp's worker keeps it to itself.
            self._app = await factory()
            return self._app

        self.wsgi = build_and_keep  # type: ignore[assignment]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._app is None or self._drain is not None:
            super().handle_exit(sig, frame)
            return
        self._drain = self.loop.create_task(self._drain_then_exit(sig, frame))

    async def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        from .keys import GATE, SETTINGS

        app = self._app
        assert app is not None
        try:
            await app[GATE].drain(app[SETTINGS].drain_s)
        finally:
            super().handle_exit(sig, frame)
