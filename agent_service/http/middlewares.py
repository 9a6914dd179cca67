"""Middlewares, outermost first: errors → request id → request body.

Each does one job. The error middleware is the only place that renders an error response.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from agent_service import errors
from agent_service.keys import BODY, ENDPOINT, ENDPOINTS, REQUEST_ID, SCHEMAS, SETTINGS, TRACE_ID
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
    """Any exception → the OpenAI error envelope. 5xx details go to the log only."""
    try:
        return await handler(request)
    except errors.ServiceError as error:
        _log_error(error)
        return error_response(error, request.get(REQUEST_ID))
    except web.HTTPException as http_error:
        if http_error.status < 400:
            raise
        return error_response(_from_http(http_error, request), request.get(REQUEST_ID))
    except Exception:
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return error_response(errors.ServiceError(), request.get(REQUEST_ID))


def _log_error(error: errors.ServiceError) -> None:
    if error.status >= 500:
        log.error("%s: %s", type(error).__name__, error.message, exc_info=error.__cause__)
    elif error.status == 429:
        log.warning("%s: %s", type(error).__name__, error.message)
    else:
        log.info("%s: %s", type(error).__name__, error.message)


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
        return _too_large(request)
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


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For agent routes: JSON content type, size limit, JSON object, the task's schema."""
    endpoint = request.app[ENDPOINTS].get(request.match_info.route)
    if endpoint is None:
        return await handler(request)
    _check_content_type(request)
    _check_declared_size(request)
    raw = await request.read()
    body = _parse_object(raw)
    problem = request.app[SCHEMAS].first_problem(endpoint.task.request_schema, body)
    if problem is not None:
        raise errors.InvalidBody(problem.message, param=problem.json_path, code=problem.code)
    request[ENDPOINT] = endpoint
    request[BODY] = body
    return await handler(request)


def _check_content_type(request: web.Request) -> None:
    if "Content-Type" not in request.headers:
        return  # tolerated: a JSON body without a declared type is still JSON to us
    mimetype = request.content_type
    if mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        charset = request.charset
        if charset is None or charset.lower().replace("-", "") == "utf8":
            return
    raise errors.UnsupportedMediaType(
        f"Content type {request.headers['Content-Type']!r} is not supported; "
        "send 'Content-Type: application/json' (UTF-8)."
    )


def _check_declared_size(request: web.Request) -> None:
    """Refuse before reading when the client says up front that the body is too large."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(request)


def _too_large(request: web.Request) -> errors.PayloadTooLarge:
    limit = request.app[SETTINGS].max_body_bytes
    return errors.PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


def _parse_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise errors.InvalidJSON("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidJSON(
            f"The request body is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(body, dict):
        raise errors.InvalidBody(
            f"The request body must be a JSON object, not {_json_type(body)}.",
            param="$",
            code="invalid_type",
        )
    return body


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"
