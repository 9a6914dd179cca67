"""The log as the server writes it (our formatter: request ids, credentials masked, client
text escaped), captured in memory for tests that run the app in this process."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from agent_service.observability.logs import LOG_FORMAT, RedactingFormatter, RequestIdFilter


class ServerLog:
    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self.handler = logging.StreamHandler(self._buffer)
        self.handler.setFormatter(RedactingFormatter(LOG_FORMAT))
        self.handler.addFilter(RequestIdFilter())

    @property
    def text(self) -> str:
        return self._buffer.getvalue()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@contextmanager
def server_log(level: int = logging.DEBUG) -> Iterator[ServerLog]:
    """Everything logged while the block runs, formatted as in production."""
    log = ServerLog()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(log.handler)
    root.setLevel(level)
    try:
        yield log
    finally:
        root.removeHandler(log.handler)
        root.setLevel(previous)
