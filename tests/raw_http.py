"""HTTP/1.1 on a plain connection, for tests that must see the bytes a client library would
hide: a second status line inside a body, a stream cut without its last chunk, a body sent a
byte at a time, a malformed request."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import orjson
from aiohttp.test_utils import BaseTestServer

# Bounds on waiting for the server; never what a test measures.
PATIENCE_S = 30


@dataclass(frozen=True)
class RawResponse:
    raw: bytes
    status: int
    headers: dict[str, str]
    body: bytes
    # Whether a chunked body ended with its last (empty) chunk: a complete answer.
    complete: bool

    @property
    def status_lines(self) -> int:
        """How many HTTP status lines the connection carried (one per response)."""
        return len(re.findall(rb"(?:^|\r\n)HTTP/1\.[01] \d{3} ", self.raw))

    def json(self) -> object:
        return orjson.loads(self.body)


def post(path: str, body: bytes, *, headers: dict[str, str] | None = None) -> bytes:
    """A POST request that asks the server to close the connection after its answer."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: test",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(server: BaseTestServer, request: bytes) -> RawResponse:
    """Send `request` to a test server and read everything until it closes the connection."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(PATIENCE_S):
            raw = await read_to_end(reader)
    finally:
        writer.close()
    return parse(raw)


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes; a reset after some bytes ends it too."""
    received = b""
    try:
        while piece := await reader.read(65536):
            received += piece
    except ConnectionResetError:
        pass
    return received


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    """One response with a Content-Length, without waiting for the connection to close."""
    async with asyncio.timeout(PATIENCE_S):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(parse(head).headers.get("content-length", "0"))
        body = await reader.readexactly(length)
    return parse(head + body)


def parse(raw: bytes) -> RawResponse:
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return RawResponse(raw, status, headers, rest, complete=True)
    body, complete = _dechunk(rest)
    return RawResponse(raw, status, headers, body, complete)


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    body = b""
    while True:
        size_line, found, data = data.partition(b"\r\n")
        if not found:
            return body, False
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return body, False
        if size == 0:
            return body, True
        if len(data) < size + 2:
            return body + data[:size], False
        body += data[:size]
        data = data[size + 2 :]
