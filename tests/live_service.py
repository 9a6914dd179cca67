"""The real service (and, when asked, the fake OpenAI endpoint) on 127.0.0.1 in a thread of
its own, for tests that drive it from outside the event loop: a browser through Playwright's
synchronous API, MLflow's blocking client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from agent_service.app import create_app
from tests.conftest import settings_for
from tests.fakes.openai_server import FakeOpenAI

_T = TypeVar("_T")
# A service starts in well under a second; MLflow's first SQLite store takes a few.
START_TIMEOUT_S = 60


@dataclass
class LiveService:
    base_url: str
    app: web.Application
    loop: asyncio.AbstractEventLoop
    fake: FakeOpenAI | None

    def call(self, function: Callable[[], _T]) -> _T:
        """Run `function` on the service's loop (asyncio objects belong to their loop)."""
        future: Future[_T] = Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as error:  # noqa: BLE001 - handed back to the caller
                future.set_exception(error)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def wait(self, event: Callable[[], asyncio.Event], timeout: float = 30) -> None:
        """Block until the asyncio event (built on the service's loop) is set."""
        asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(event().wait(), timeout), self.loop
        ).result(timeout + 5)


@contextmanager
def live_service(
    env: Mapping[str, str] | None = None, *, fake_openai: bool = False
) -> Iterator[LiveService]:
    """Start the app from `create_app` (and the fake model endpoint first, when asked); stop
    both on exit."""
    loop = asyncio.new_event_loop()
    ready: Future[LiveService] = Future()
    stop = loop.create_future()
    stopped: Future[None] = Future()

    async def serve() -> None:
        runners: list[web.AppRunner] = []
        try:
            fake = FakeOpenAI() if fake_openai else None
            settings_env = dict(env or {})
            if fake is not None:
                fake_url = await _start(fake.app(), runners)
                settings_env = {
                    "OPENAI_BASE_URL": f"{fake_url}/v1",
                    "OPENAI_API_KEY": "sk-test-key",
                    "OPENAI_MODEL": "fake-model",
                    "MODEL_MAX_RETRIES": "0",
                    **settings_env,
                }
            app = await create_app(settings_for(settings_env))
            base_url = await _start(app, runners)
            ready.set_result(LiveService(base_url, app, loop, fake))
        except BaseException as error:
            ready.set_exception(error)
            raise
        try:
            await stop
        finally:
            for runner in reversed(runners):
                await runner.cleanup()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
            stopped.set_result(None)
        except BaseException as error:  # noqa: BLE001 - reported by the thread's owner
            if not stopped.done():
                stopped.set_exception(error)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="live-service", daemon=True)
    thread.start()
    service = ready.result(timeout=START_TIMEOUT_S)
    try:
        yield service
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(timeout=60)
        stopped.result(timeout=1)


async def _start(app: web.Application, runners: list[web.AppRunner]) -> str:
    runner = web.AppRunner(app)
    await runner.setup()
    runners.append(runner)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    port = server.sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}"
