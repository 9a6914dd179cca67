"""The chat page: `GET /` and its static files, who the user is, and feedback on answers.

The page is plain files from `agent_service/ui/` (see `ui_assets.py`), served under a strict
Content-Security-Policy: scripts and styles from this origin only, no inline code, no request
to any other origin. `/` and the assets are public even when `AGENT_API_KEYS` is set (the page
asks for a key and sends it); `/ui/session` and `/ui/feedback` are API routes like the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import hdrs, web

from agent_service import errors
from agent_service.http.state import caller
from agent_service.http.ui_assets import Asset, UiAssets
from agent_service.http.validation import read_valid_body
from agent_service.jsonio import dumps
from agent_service.keys import AGENT, SETTINGS, STATE, UI_ASSETS
from agent_service.observability.feedback import (
    Feedback,
    TraceNotFound,
    record_feedback,
    trace_url_template,
)

log = logging.getLogger(__name__)

ASSETS_PREFIX = "/ui/assets/"
FEEDBACK_SCHEMA = "ui-feedback.request"
# Feedback on a trace not stored yet waits this long for it (traces are exported in
# batches, a fraction of a second after the answer); then 404 trace_not_found, and the page
# sends it again later (feedback.js).
FEEDBACK_WAIT_S = 5.0

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# The page names the build of its assets: ask every time (a 304 when unchanged).
_REVALIDATE = "no-cache"
# An asset URL carries the build's digest: its content never changes.
_IMMUTABLE = "public, max-age=31536000, immutable"


def setup_ui(app: web.Application) -> None:
    app[UI_ASSETS] = UiAssets.load()
    app.router.add_get("/", index)
    app.router.add_get(ASSETS_PREFIX + "{build}/{name}", asset)
    app.router.add_get("/ui/session", session)
    app.router.add_get("/ui/conversations", conversations)
    app.router.add_post("/ui/feedback", feedback)


def _serve(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {
        **_SECURITY_HEADERS,
        hdrs.CACHE_CONTROL: cache_control,
        hdrs.ETAG: asset.etag,
        hdrs.VARY: "Accept-Encoding",
    }
    if asset.etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, ""):
        body = asset.gzipped
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    headers[hdrs.CONTENT_TYPE] = asset.content_type
    return web.Response(body=body, headers=headers)


async def index(request: web.Request) -> web.Response:
    return _serve(request, request.app[UI_ASSETS].index, _REVALIDATE)


async def asset(request: web.Request) -> web.Response:
    assets = request.app[UI_ASSETS]
    found = assets.files.get(request.match_info["name"])
    if found is None or request.match_info["build"] != assets.build:
        raise errors.NotFound(f"No file {request.path}; reload the page.")
    return _serve(request, found, _IMMUTABLE)


def forwarded_user(request: web.Request) -> str | None:
    """The user Databricks Apps signed in (its proxy sets these headers), if any."""
    return request.headers.get("X-Forwarded-Email") or request.headers.get("X-Forwarded-User")


async def session(request: web.Request) -> web.Response:
    """What the page shows and offers: the agent, the signed-in user, feedback, trace links."""
    settings = request.app[SETTINGS]
    agent = request.app[AGENT]
    status = agent.tracer.status
    headers = request.headers
    user = None
    if forwarded_user(request):
        user = {
            "name": headers.get("X-Forwarded-Preferred-Username")
            or headers.get("X-Forwarded-User"),
            "email": headers.get("X-Forwarded-Email"),
        }
    body: dict[str, Any] = {
        "agent": {"name": settings.agent_name, "version": agent.version},
        "user": user,
        "feedback": status.available,
        "trace_url": trace_url_template(
            settings.tracking_uri, status.experiment_id, settings.databricks.host
        )
        if status.available
        else None,
        # Where conversations live: the service's state store when it has one (the page
        # then uses the Conversations API), else the browser.
        "conversations": "server" if request.app[STATE].store is not None else "browser",
    }
    return web.Response(
        body=dumps(body),
        content_type="application/json",
        headers={hdrs.CACHE_CONTROL: "no-store"},
    )


# The sidebar lists this many of the caller's most recent conversations.
RECENT_CONVERSATIONS = 100


async def conversations(request: web.Request) -> web.Response:
    """The caller's conversations, most recently active first: OpenAI's Conversations API
    has no list, and the page's sidebar needs one."""
    store = request.app[STATE].store
    if store is None:
        raise errors.NotFound("Conversations are not kept: the state store is off.")
    recent = await store.conversations.recent(caller(request), limit=RECENT_CONVERSATIONS)
    data = [
        {
            "id": conversation.id,
            "object": "conversation",
            "title": conversation.metadata.get("title", ""),
            "created_at": conversation.created_at,
            "updated_at": int(updated_at),
        }
        for conversation, updated_at in recent
    ]
    return web.Response(
        body=dumps({"object": "list", "data": data}),
        content_type="application/json",
        headers={hdrs.CACHE_CONTROL: "no-store"},
    )


class FeedbackUnavailable(errors.ServiceError):
    status = 503
    default_code = "feedback_unavailable"
    default_message = "Feedback cannot be recorded: tracing is off or its store is unavailable."


async def feedback(request: web.Request) -> web.Response:
    """Record a rating (and comment) of an answer as MLflow feedback on its trace."""
    body = await read_valid_body(request, FEEDBACK_SCHEMA)
    if not request.app[AGENT].tracer.status.available:
        raise FeedbackUnavailable()
    verdict = Feedback(
        trace_id=body["trace_id"],
        helpful=body["rating"] == "up",
        comment=body.get("comment") or None,
        user=forwarded_user(request),
        replaces=body.get("assessment_id"),
        key=body.get("idempotency_key"),
    )
    tracer = request.app[AGENT].tracer
    try:
        try:
            assessment_id = await asyncio.to_thread(record_feedback, verdict)
        except TraceNotFound:
            # The answer may have outrun its trace: store what this worker finished, and
            # look for traces of the other workers until the wait is over (one wait in all).
            deadline = time.monotonic() + FEEDBACK_WAIT_S
            await tracer.flush(FEEDBACK_WAIT_S)
            left = max(0.0, deadline - time.monotonic())
            assessment_id = await asyncio.to_thread(record_feedback, verdict, left)
    except TraceNotFound:
        # The page asks again a few times: the trace may still be on its way to the store.
        raise errors.NotFound(
            f"No trace {verdict.trace_id} to give feedback on.", code="trace_not_found"
        ) from None
    except Exception as exc:
        raise errors.ServiceError("The feedback could not be recorded.") from exc
    return web.Response(
        body=dumps({"trace_id": verdict.trace_id, "assessment_id": assessment_id}),
        content_type="application/json",
    )
