"""The state store in the app: opened once per worker, swept in the background, and who the
caller is (whose stored state a request may see).

A store that cannot be opened stops the worker at start-up, with a log line naming the store
(without credentials) and the reason. Serving on without it was the other choice, and a
worse one: `store` defaults to true, so every Responses request would fail anyway, and a
load balancer would keep sending traffic to an instance whose /ready says it is fine.
`STATE_STORE=off` is how to run without state, on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from agent_service.keys import CALLER, SETTINGS, STATE, THREAD_NAME
from agent_service.state.identity import ANONYMOUS
from agent_service.state.store import StateStore, StoreOptions, StoreUnavailable, open_store

log = logging.getLogger(__name__)

# How often each worker deletes what outlived the retention period (and once at start).
SWEEP_INTERVAL_S = 3600.0


@dataclass(slots=True)
class StateRuntime:
    """Filled by the cleanup context: None until started, or when STATE_STORE=off."""

    store: StateStore | None = None

    def describe(self) -> dict[str, object]:
        if self.store is None:
            return {"backend": "off"}
        return self.store.describe()


def setup_state(app: web.Application) -> None:
    app[STATE] = StateRuntime()
    app.cleanup_ctx.append(_state_context)
    app.on_response_prepare.append(_add_thread_header)


THREAD_HEADER = "X-Thread-Id"


# Names that can travel in a header as they are; any other name comes back in
# custom_outputs.thread_id only (a header cannot carry control characters or non-ASCII).
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,256}$")


async def _add_thread_header(request: web.Request, response: web.StreamResponse) -> None:
    """The conversation a request continued, by the name the client gave it."""
    name = request.get(THREAD_NAME)
    if name and _HEADER_SAFE.match(name):
        response.headers[THREAD_HEADER] = name


def caller(request: web.Request) -> str:
    """The owner of whatever this request stores or reads (set by the auth middleware)."""
    owner: str = request.get(CALLER, ANONYMOUS)
    return owner


async def _state_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    location = settings.state_store
    if not location.enabled:
        log.info("State store: off (stored responses and conversations are refused)")
        yield
        return
    options = StoreOptions(
        retention_s=settings.state_retention_days * 86400.0,
        pool_size=settings.state_pool_size,
        connect_timeout_s=settings.state_connect_timeout_s,
        event_retention_s=settings.state_event_retention_s,
        databricks=settings.databricks,
    )
    try:
        store = await open_store(location, options)
    except StoreUnavailable as failure:
        log.error("The worker cannot start: %s", failure)  # noqa: TRY400 - the reason is the message
        raise
    app[STATE].store = store
    log.info("State store: %s (schema version %d)", location.describe(), store.schema_version)
    sweeper = asyncio.create_task(_sweep_forever(store), name="state-sweep")
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        app[STATE].store = None
        await store.close()


async def _sweep_forever(store: StateStore) -> None:
    while True:
        try:
            removed = await store.sweep()
            if removed:
                log.info("State store: %d expired thread(s) deleted", removed)
        except Exception:
            log.exception("State store: the retention sweep failed; retrying later")
        await asyncio.sleep(SWEEP_INTERVAL_S)
