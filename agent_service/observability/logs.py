"""Logging: every line carries the request id of the request it belongs to ("-" outside one),
no line carries a credential (bearer tokens and the shapes of Databricks and OpenAI keys are
masked whatever logged them), and no client can forge a line: control characters in a
message (a newline in a JSON key a client chose, an escape sequence in a header) are written
escaped, so one record is one line. Tracebacks, which are ours, keep their lines."""

from __future__ import annotations

import contextvars
import logging
import re
from typing import Any

from agent_service.observability.redaction import redact

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_request_id", default="-"
)

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [%(request_id)s] %(message)s"
# aiohttp's access log format, with the request id from our response header.
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs "%{User-Agent}i" [%{X-Request-Id}o]'


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record so the format can always print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


# C0 controls but tab, DEL, C1's NEL and Unicode's line and paragraph separators: whatever a
# terminal or a log shipper could take for the end of a line or a command.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with every control character written as its escape (`\\n`, `\\x1b`)."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode(), text)


class RedactingFormatter(logging.Formatter):
    """Masks credentials in the whole formatted line, tracebacks included, and escapes
    control characters in the message."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def logging_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the server: our format on stderr, gunicorn's and
    aiohttp's loggers included."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": RedactingFormatter, "format": LOG_FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            # httpx2 logs every request line at INFO, duplicating our access log.
            "httpx2": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
        },
    }
