"""The cross-cutting middlewares, outermost first: metrics → errors → request id.

Each does one job. The error middleware is the only place that renders an error response.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from agent_service import errors
from agent_service.http.client_log import CLIENT_CLOSED, note_disconnect
from agent_service.http.validation import too_large
from agent_service.keys import METRICS, REQUEST_ID, STARTED, STARTED_RESPONSE, TRACE_ID
from agent_service.observability.logs import current_request_id

log = logging.getLogger(__name__)

# A client-supplied request id is kept when it is short and plain; anything else could be
# used to forge log lines, so a fresh one is generated instead.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

# The statuses aiohttp itself raises (routing, body size) and our counterpart for each.
_HTTP_ERRORS: dict[int, type[errors.ServiceError]] = {
    400: errors.ClientError,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


def error_response(error: errors.ServiceError, request_id: str | None) -> web.Response:
    return web.Response(
        status=error.status,
        body=orjson.dumps(error.to_envelope(request_id)),
        content_type="application/json",
        headers=error.headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Any exception → the OpenAI error envelope. 5xx details go to the log only. Once a
    response has started (a stream's status line is out), no other response may follow it
    on the connection: the stream's own loop ends it with the protocol's terminal event, and
    whatever escapes that loop aborts the connection, so the client sees a broken answer,
    never one that looks complete, nor a second status line inside the first body."""
    try:
        return await handler(request)
    except Exception as exc:
        started = request.get(STARTED_RESPONSE)
        if started is not None:
            return _abort(request, started, exc)
        if isinstance(exc, errors.ServiceError):
            log_error(exc)
            return error_response(exc, request.get(REQUEST_ID))
        if isinstance(exc, web.HTTPException):
            if exc.status < 400:
                raise
            return error_response(_from_http(exc, request), request.get(REQUEST_ID))
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return error_response(errors.ServiceError(), request.get(REQUEST_ID))


def _abort(request: web.Request, started: web.StreamResponse, exc: Exception) -> web.StreamResponse:
    log.error(
        "Unhandled error in %s %s after the response started; connection aborted",
        request.method,
        request.path,
        exc_info=exc,
    )
    if request.transport is not None:
        request.transport.abort()
    return started


async def note_started(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: remember the response whose status line goes out now."""
    request[STARTED_RESPONSE] = response


def log_error(error: errors.ServiceError, *, mid_stream: bool = False) -> None:
    """One line per failed request, at a level that says whose fault it is: the client's
    (INFO), the model endpoint's (ERROR without a traceback: nothing of ours to debug), the
    server stopping a run (WARNING), or ours (ERROR with the traceback)."""
    when = " after the stream started" if mid_stream else ""
    if isinstance(error, errors.UpstreamError):
        level = logging.WARNING if isinstance(error, errors.UpstreamRateLimited) else logging.ERROR
        log.log(level, "The model endpoint failed%s: %s%s", when, error.message, _cause(error))
    elif isinstance(error, errors.RUN_STOPPED):
        log.warning("%s%s: %s", type(error).__name__, when, error.message)
    elif error.status >= 500:
        log.error("%s%s: %s", type(error).__name__, when, error.message, exc_info=error.__cause__)
    elif error.status == 429:
        log.warning("%s: %s", type(error).__name__, error.message)
    else:
        log.info("%s: %s", type(error).__name__, error.message)


# Enough of an upstream's own message to say what went wrong, not a page of HTML.
_CAUSE_CHARS = 300


def _cause(error: errors.ServiceError) -> str:
    cause = error.__cause__
    if cause is None or cause is error:
        return ""
    text = " ".join(str(cause).split())
    if len(text) > _CAUSE_CHARS:
        text = text[: _CAUSE_CHARS - 1] + "…"
    return f" ({type(cause).__name__}: {text})" if text else f" ({type(cause).__name__})"


def _from_http(http_error: web.HTTPException, request: web.Request) -> errors.ServiceError:
    kind = _HTTP_ERRORS.get(http_error.status, errors.ClientError)
    if isinstance(http_error, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(http_error.allowed_methods))
        return errors.MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}; use {allowed}.",
            headers={"Allow": allowed},
        )
    if isinstance(http_error, web.HTTPNotFound):
        return errors.NotFound(f"No route {request.method} {request.path}.")
    if isinstance(http_error, web.HTTPRequestEntityTooLarge):
        return too_large(request)
    return kind(http_error.reason)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Accept the client's `X-Request-Id` or make one; it goes on the response and in logs."""
    supplied = request.headers.get("X-Request-Id", "")
    request_id = supplied if _CLIENT_REQUEST_ID.match(supplied) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    current_request_id.set(request_id)
    return await handler(request)


TRACE_ID_HEADER = "x-mlflow-trace-id"


async def add_id_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the request id (and the trace id, when the request is traced)
    on every response, streams and errors included."""
    if request_id := request.get(REQUEST_ID):
        response.headers["X-Request-Id"] = request_id
    if trace_id := request.get(TRACE_ID):
        response.headers[TRACE_ID_HEADER] = trace_id


def route_label(request: web.Request) -> str:
    """The route's template, not the raw path: unknown paths must not explode label counts."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    loop = asyncio.get_running_loop()
    started = request[STARTED] = loop.time()
    route = route_label(request)
    status = CLIENT_CLOSED
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        note_disconnect(request, loop.time() - started)
        raise
    else:
        status = response.status
        return response
    finally:
        metrics.requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(loop.time() - started)
