"""Slow clients from outside, on raw sockets: a body trickled a byte at a time holds a
connection, never one of MAX_CONCURRENT_REQUESTS; it gets 408 in our envelope when it does
not arrive in BODY_READ_TIMEOUT_SECONDS; a request head that never ends, or an idle
connection, is closed after IDLE_TIMEOUT_SECONDS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson

from tests.conftest import ServiceFactory
from tests.raw_http import PATIENCE_S, read_response, read_to_end
from tests.test_production import metric, until
from tests.wire import HELLO, Client

# Each trickler announces this much body and sends one byte of it.
ANNOUNCED = 100
TRICKLERS = 60


def trickle_head(path: str = "/invocations") -> bytes:
    """A request head and the first byte of a body that never comes whole."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {ANNOUNCED}\r\n\r\n"
    )
    return head.encode() + b"{"


@contextlib.asynccontextmanager
async def tricklers(client: Client, count: int) -> AsyncIterator[list[asyncio.StreamReader]]:
    """`count` connections, each with a request whose body has begun and stalled."""
    server = client.server
    connections = [await asyncio.open_connection(server.host, server.port) for _ in range(count)]
    try:
        for _, writer in connections:
            writer.write(trickle_head())
            await writer.drain()
        yield [reader for reader, _ in connections]
    finally:
        for _, writer in connections:
            writer.close()


async def test_sixty_trickling_uploads_do_not_lock_out_a_normal_request(
    make_service: ServiceFactory,
) -> None:
    client = await make_service(
        {"MAX_CONCURRENT_REQUESTS": "50", "BODY_READ_TIMEOUT_SECONDS": str(PATIENCE_S * 4)}
    )

    async def all_receiving() -> bool:
        return await metric(client, "agent_requests_receiving") == TRICKLERS

    async with tricklers(client, TRICKLERS):
        await until(all_receiving, what="every trickler's body being read")
        response = await client.post("/invocations", json=HELLO)
        assert response.status == 200, await response.text()
        assert (await response.json())["choices"][0]["message"]["content"]
        # Every trickler is still being waited for: none was refused (503) or dropped.
        assert await all_receiving()
        assert await metric(client, "agent_rejections", reason="overloaded") == 0
        assert await metric(client, "agent_requests_in_flight") == 0


async def test_a_body_that_does_not_arrive_in_time_is_a_408_in_the_envelope(
    make_service: ServiceFactory,
) -> None:
    client = await make_service({"BODY_READ_TIMEOUT_SECONDS": "0.5"})
    async with tricklers(client, 1) as (reader,):
        response = await read_response(reader)
        assert response.status == 408
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["connection"] == "close"
        error = orjson.loads(response.body)["error"]
        assert error["code"] == "request_timeout"
        assert error["type"] == "invalid_request_error"
        assert "did not arrive within 0.5 s" in error["message"]
        assert f"(request id: {response.headers['x-request-id']})" in error["message"]
        # And the connection is closed after it: what follows cannot be told from a request.
        async with asyncio.timeout(PATIENCE_S):
            assert await read_to_end(reader) == b""
    assert await metric(client, "agent_requests_receiving") == 0


async def test_a_request_head_that_never_ends_is_closed_after_the_idle_timeout(
    make_service: ServiceFactory,
) -> None:
    client = await make_service({"IDLE_TIMEOUT_SECONDS": "0.5"})
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(b"POST /invocations HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        await writer.drain()
        async with asyncio.timeout(PATIENCE_S):
            assert await read_to_end(reader) == b""
    finally:
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    make_service: ServiceFactory,
) -> None:
    client = await make_service({"IDLE_TIMEOUT_SECONDS": "0.5"})
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        body = orjson.dumps(HELLO)
        writer.write(
            b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        assert (await read_response(reader)).status == 200
        # Kept alive after the answer, then closed when nothing more comes.
        async with asyncio.timeout(PATIENCE_S):
            assert await read_to_end(reader) == b""
    finally:
        writer.close()
