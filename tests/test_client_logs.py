"""What the log says about clients, read as the server writes it (tests/log_capture.py), with
the requests sent on raw sockets: a client cannot forge a line; a request aiohttp cannot
parse is the client's fault (one INFO line, no traceback, no ERROR); every client that leaves
before its answer leaves one INFO line and one access-log line."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

import orjson
import pytest

from tests.conftest import ServiceFactory
from tests.log_capture import server_log
from tests.raw_http import PATIENCE_S, exchange, post
from tests.test_production import metric, until
from tests.wire import HELLO, Client

FORGED = "ERROR [1] agent_service.app [-] forged line"


async def test_a_key_with_a_line_separator_cannot_forge_a_log_line(
    make_service: ServiceFactory,
) -> None:
    """JSON paths quote a key as JSON (a newline is written `\\n`), which leaves U+2028 and
    NEL (line breaks to many log viewers and shippers) as they are; the log escapes them."""
    client = await make_service()
    deep: object = "x"
    for _ in range(70):
        deep = [deep]
    body = {**HELLO, "custom_inputs": {f"k\u2028{FORGED}\x85{FORGED}": deep}}
    with server_log() as captured:
        response = await client.post("/invocations", json=body)
        assert response.status == 400
    [refusal] = [line for line in captured.lines if "forged line" in line]
    assert "\\u2028" + FORGED + "\\x85" + FORGED in refusal
    assert "\u2028" not in captured.text
    assert "\x85" not in captured.text


@pytest.mark.parametrize(
    ("request_bytes", "what"),
    [
        pytest.param(
            b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            "Got more than 8190 bytes",
            id="oversized-header",
        ),
        pytest.param(
            # A second request on the connection: aiohttp logs an unknown method on the first
            # one at DEBUG already (port scanners), only later ones at ERROR.
            b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nBREW /pot HTTP/1.1\r\nHost: t\r\n\r\n",
            "BREW",
            id="unknown-method",
        ),
        pytest.param(
            b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "Transfer-Encoding",
            id="conflicting-transfer-encoding",
        ),
        pytest.param(
            b"POST /invocations HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked, gzip"
            b"\r\n\r\n",
            "Transfer-Encoding",
            id="bad-transfer-encoding",
        ),
    ],
)
async def test_a_request_aiohttp_cannot_parse_is_the_clients_fault(
    make_service: ServiceFactory, request_bytes: bytes, what: str
) -> None:
    client = await make_service()
    with server_log() as captured:
        answer = await exchange(client.server, request_bytes)
    # aiohttp answers these itself, before our code runs (README: why not our envelope).
    assert b" 400 Bad Request\r\n" in answer.raw
    assert "Traceback" not in captured.text, captured.text
    assert not [line for line in captured.lines if " ERROR " in line], captured.text
    [refused] = [line for line in captured.lines if "Malformed HTTP request" in line]
    assert " INFO " in refused
    assert what.lower() in refused.lower()


def _disconnect_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "before the answer was complete" in line]


def _access_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.search(r'"POST /v1/\S+ HTTP/1\.1" 499 ', line)]


async def _leave_midway(client: Client, path: str, body: Mapping[str, object]) -> None:
    """Send a request, read the first bytes of its answer, and hang up."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(post(path, orjson.dumps(body)))
    await writer.drain()
    async with asyncio.timeout(PATIENCE_S):
        await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def _leave_waiting(client: Client, path: str, body: Mapping[str, object]) -> None:
    """Send a request and hang up before any of its answer came."""
    _reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(post(path, orjson.dumps(body)))
    await writer.drain()
    writer.close()


async def _leave_uploading(client: Client, path: str, body: Mapping[str, object]) -> None:
    """Send half a body and hang up."""
    _reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    whole = post(path, orjson.dumps(body))
    writer.write(whole[: len(whole) - 10])
    await writer.drain()
    writer.close()


LEAVERS = 6


async def test_every_client_that_leaves_leaves_one_info_line_and_one_access_line(
    make_service: ServiceFactory,
) -> None:
    # Slow tokens: an answer takes seconds, so every client leaves before its end.
    client = await make_service({"OFFLINE_TOKEN_DELAY_MS": "200"})
    stream = {"input": "Hi", "stream": True}
    with server_log() as captured:
        for _ in range(LEAVERS // 3):
            await _leave_midway(client, "/v1/responses", stream)
            await _leave_waiting(client, "/v1/chat/completions", HELLO)
            await _leave_uploading(client, "/v1/chat/completions", HELLO)

        async def all_counted() -> bool:
            routes = ("/v1/responses", "/v1/chat/completions")
            counts = [
                await metric(client, "agent_requests_total", route=route, status="499")
                for route in routes
            ]
            return sum(counts) == LEAVERS

        await until(all_counted, what="every client that left counted")
    lines = captured.lines
    assert len(_disconnect_lines(lines)) == LEAVERS, captured.text
    assert all(" INFO " in line for line in _disconnect_lines(lines))
    assert len(_access_lines(lines)) == LEAVERS, captured.text
    assert "Traceback" not in captured.text
