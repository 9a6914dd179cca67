"""Request bodies at the edge: JSON content type, no content encoding, size, JSON structure
and nesting within bounds, a JSON object, the schema. For agent routes the middleware does
it and stores what passes under `BODY`; other JSON routes (the Conversations API, the chat
page's feedback) call `read_valid_body` themselves. Every step costs the event loop at most
a few milliseconds per megabyte: why and how, in schemas/README.md."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from agent_service import errors
from agent_service.http.routes import wrong_protocol_message
from agent_service.json_limits import LIMITS, StructureCount, depth_check
from agent_service.keys import (
    BODY,
    BODY_BYTES,
    ENDPOINT,
    ENDPOINTS,
    METRICS,
    SCHEMAS,
    SETTINGS,
)
from agent_service.schemas import SchemaProblem, json_path

# A body larger than this is parsed in an event-loop step of its own.
_YIELD_ABOVE_BYTES = 1024 * 1024


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For agent routes: JSON content type, size limit, JSON object, the task's schema."""
    endpoint = request.app[ENDPOINTS].get(request.match_info.route)
    if endpoint is None:
        return await handler(request)
    spec = endpoint.spec
    body = await _read_object(request)
    problem = request.app[SCHEMAS].first_problem(spec.request_schema, body)
    if problem is not None:
        # A request of another protocol (Chat Completions sent where Responses is spoken, say)
        # is told which protocol this route speaks, not merely which field it lacks.
        message = wrong_protocol_message(request.path, spec, body)
        if message is not None:
            field = f"$.{spec.input_field}"
            raise errors.InvalidBody(message, param=field, code="missing_required_parameter")
        raise _invalid(problem)
    request[ENDPOINT] = endpoint
    request[BODY] = body
    return await handler(request)


async def read_valid_body(request: web.Request, schema: str) -> dict[str, Any]:
    """The request's JSON object body, checked against the bundled schema `schema`; raises
    the client error naming the problem (and its JSON path) otherwise."""
    body = await _read_object(request)
    problem = request.app[SCHEMAS].first_problem(schema, body)
    if problem is not None:
        raise _invalid(problem)
    return body


async def _read_object(request: web.Request) -> dict[str, Any]:
    _check_content_type(request)
    _check_content_encoding(request)
    _check_declared_size(request)
    raw = await _read(request)
    request[BODY_BYTES] = len(raw)
    body = _parse_object(raw)
    if len(raw) > _YIELD_ABOVE_BYTES:
        await asyncio.sleep(0)  # and the checks and the run start in steps of their own
    return body


async def _read(request: web.Request) -> bytearray:
    """The whole body within BODY_READ_TIMEOUT_SECONDS (else 408, and the connection is
    closed: the rest of a body cut off there cannot be told from the next request)."""
    settings = request.app[SETTINGS]
    receiving = request.app[METRICS].receiving
    receiving.inc()
    try:
        async with asyncio.timeout(settings.body_read_timeout_s):
            return await _read_pieces(request, settings.max_body_bytes)
    except TimeoutError:
        raise errors.RequestTimeout(
            f"The request body did not arrive within {settings.body_read_timeout_s:g} s.",
            headers={hdrs.CONNECTION: "close"},
        ) from None
    finally:
        receiving.dec()


async def _read_pieces(request: web.Request, limit: int) -> bytearray:
    """The whole body, piece by piece as it arrives: counted against MAX_BODY_BYTES and the
    JSON structure limits on the way (so neither check is one long pass over 16 MiB, and a
    body over either is refused without reading the rest)."""
    structure = StructureCount(LIMITS)
    # Appended to as pieces arrive, not joined at the end: joining 16 MiB is one more
    # copy in the same event-loop step as the parse.
    body = bytearray()
    async for piece in request.content.iter_any():
        if len(body) + len(piece) > limit:
            raise too_large(request)
        if (problem := structure.add(piece)) is not None:
            raise errors.PayloadTooLarge(problem, code="too_much_structure")
        body += piece
    if len(body) > _YIELD_ABOVE_BYTES:
        # The parse of a large body is the longest step a request takes (about 1 ms per
        # MiB of CPU); let the loop serve others between the last piece and it.
        await asyncio.sleep(0)
    return body


def _check_content_encoding(request: web.Request) -> None:
    """Bodies are taken as sent: aiohttp's inflating is off (an 8 MiB gzip body can inflate
    to 8 GiB, all of it decompressed on the event loop), so a compressed body is refused
    the way RFC 7694 says, with the encodings we accept."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if encoding not in ("", "identity"):
        raise errors.UnsupportedMediaType(
            f"Content-Encoding {request.headers[hdrs.CONTENT_ENCODING]!r} is not supported; "
            "send the body uncompressed.",
            code="unsupported_content_encoding",
            headers={hdrs.ACCEPT_ENCODING: "identity"},
        )


def _invalid(problem: SchemaProblem) -> errors.InvalidBody:
    return errors.InvalidBody(problem.message, param=problem.json_path, code=problem.code)


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
        raise too_large(request)


def too_large(request: web.Request) -> errors.PayloadTooLarge:
    limit = request.app[SETTINGS].max_body_bytes
    return errors.PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


def _parse_object(raw: bytearray) -> dict[str, Any]:
    if raw.isspace() or not raw:  # (no `strip()`: a copy of the body)
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
    if (path := depth_check().too_deep(body)) is not None:
        where = json_path(path)
        raise errors.InvalidBody(
            f"{where}: nests deeper than {LIMITS.max_depth} levels (the body is level 1).",
            param=where,
            code="too_deep",
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
