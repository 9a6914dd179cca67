"""What the log says about clients that misbehave or leave: one line each, at INFO.

A request aiohttp cannot parse (an oversized header, an unknown method, a conflicting
Transfer-Encoding) is the client's fault; aiohttp logs it as an ERROR with its parser's
traceback, and `ClientFaultFilter` makes that one INFO line. aiohttp answers such a request
itself, before any of our code runs (no middleware, no response signal sees it), so its
answer stays aiohttp's short `text/plain` 400 and the connection is closed.

A client that leaves before its answer is complete cancels the handler (handler
cancellation is on), and aiohttp then writes no access-log line: `note_disconnect` writes
the INFO line and the access-log line (status 499, nginx's "client closed request").
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from agent_service.keys import REQUEST_ID

log = logging.getLogger(__name__)

# aiohttp's logger for what happens to a connection outside any handler (parser errors).
SERVER_LOGGER = "aiohttp.server"
# nginx's convention for "the client closed the connection before the answer".
CLIENT_CLOSED = 499


class ClientFaultFilter(logging.Filter):
    """On aiohttp's server logger: a request aiohttp could not parse is logged as one INFO
    line saying what was wrong, not as an ERROR with a traceback of aiohttp's parser."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "Malformed HTTP request from %s refused with %s: %s"
            record.args = (remote, exc.code, exc.message)
            record.exc_info = None
            record.exc_text = None
        return True


def server_logger() -> logging.Logger:
    """aiohttp's server logger with `ClientFaultFilter` on it (once per process)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(existing, ClientFaultFilter) for existing in logger.filters):
        logger.addFilter(ClientFaultFilter())
    return logger


def note_disconnect(request: web.Request, elapsed_s: float) -> None:
    """The handler was cancelled: one INFO line saying so, and the access-log line."""
    transport = request.transport
    who = "the client disconnected" if transport is None or transport.is_closing() else "cancelled"
    log.info(
        "%s %s stopped after %.3fs: %s before the answer was complete",
        request.method,
        request.path,
        elapsed_s,
        who,
    )
    access_logger = request.protocol.access_logger
    if access_logger is not None and access_logger.enabled:
        response = web.Response(status=CLIENT_CLOSED, reason="Client Closed Request")
        if request_id := request.get(REQUEST_ID):
            response.headers["X-Request-Id"] = request_id
        access_logger.log(request, response, elapsed_s)
