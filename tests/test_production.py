"""Production behaviour in one process: heartbeats, cancellation, deadlines, stalled readers,
admission, readiness and drain, metrics, authentication, CORS, header limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, ClientTimeout
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpServer

from agent_service.app import create_app
from agent_service.keys import AGENT, GATE
from agent_service.models.backends import build_chat_model
from agent_service.observability.logs import RedactingFormatter
from tests.conftest import ServiceFactory, openai_env, settings_for
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.probes import Probe, probed_graph
from tests.sse_decoder import SSEDecoder, decode
from tests.wire import HELLO, Client

FakeEndpoint = tuple[FakeOpenAI, TestServer]
# Bounds for waiting on something that must happen; they are never what a test measures.
PATIENCE_S = 30


async def probed_service(
    make_service: ServiceFactory, fake: FakeEndpoint, probe: Probe, **env: str
) -> Client:
    """The service around a probed graph whose model is the real OpenAI client on the fake."""
    settings = settings_for(openai_env(fake[1], **env))
    backend = await build_chat_model(settings)
    return await make_service(openai_env(fake[1], **env), graph=probed_graph(backend.model, probe))


async def metric(client: Client, name: str, **labels: str) -> float:
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def until(condition: Any, *, what: str) -> None:
    """Wait (bounded) for an async condition to hold."""
    async with asyncio.timeout(PATIENCE_S):
        # The condition is read over HTTP (the metrics): there is no event to wait on.
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


# --- heartbeats --------------------------------------------------------------------------


async def test_heartbeats_start_before_the_first_token(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(think_s=0.6)
    client = await make_service(openai_env(fake_openai[1], SSE_HEARTBEAT_SECONDS="0.1"))
    response = await client.post("/invocations", json={**HELLO, "stream": True})
    assert response.status == 200
    raw = await response.read()
    assert raw.startswith(b": ping\n\n"), raw[:40]
    before_data = raw[: raw.index(b"data:")]
    assert before_data.count(b": ping\n\n") >= 3, "pings keep coming while the model thinks"
    decoder = SSEDecoder()
    events = list(decoder.feed(raw))
    assert events[-1].data == "[DONE]"
    assert "ping" in decoder.comments


async def test_heartbeats_can_be_turned_off(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake_openai[0].behaviour = Behaviour(think_s=0.3)
    client = await make_service(openai_env(fake_openai[1], SSE_HEARTBEAT_SECONDS="0"))
    raw = await (await client.post("/invocations", json={**HELLO, "stream": True})).read()
    assert b": ping" not in raw
    assert raw.startswith(b"data: ")


# --- cancellation ------------------------------------------------------------------------


async def test_a_client_leaving_mid_stream_cancels_the_run(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(tokens=("tok",) * 200, chunk_delay_s=0.05)
    probe = Probe()
    client = await probed_service(make_service, fake_openai, probe)
    response = await client.post("/invocations", json={**HELLO, "stream": True})
    received = b""
    while received.count(b"data:") < 3:
        received += await response.content.readany()
    assert await metric(client, "agent_requests_in_flight") == 1
    response.close()
    async with asyncio.timeout(PATIENCE_S):
        await probe.cancelled.wait()
        await fake.cancelled.wait()  # the model's HTTP call was cancelled too
    assert not probe.finished.is_set()
    await until(lambda: _in_flight_is(client, 0), what="in-flight back to 0")
    assert await metric(client, "agent_cancellations_total", reason="client_disconnected") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_leaving_while_the_model_thinks_cancels_the_run(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(hang=True)
    probe = Probe()
    client = await probed_service(make_service, fake_openai, probe, SSE_HEARTBEAT_SECONDS="0.05")
    response = await client.post("/invocations", json={**HELLO, "stream": True})
    assert (await response.content.readany()).startswith(b": ping")
    response.close()
    async with asyncio.timeout(PATIENCE_S):
        await probe.cancelled.wait()
        await fake.cancelled.wait()
    await until(lambda: _in_flight_is(client, 0), what="in-flight back to 0")


async def test_a_client_leaving_a_json_request_cancels_the_run(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(hang=True)
    probe = Probe()
    client = await probed_service(make_service, fake_openai, probe)
    with raw_request(client, HELLO):
        async with asyncio.timeout(PATIENCE_S):
            await fake.received.wait()  # the model call is in flight
    # The client gave up: its connection is closed.
    async with asyncio.timeout(PATIENCE_S):
        await probe.cancelled.wait()
        await fake.cancelled.wait()
    await until(lambda: _in_flight_is(client, 0), what="in-flight back to 0")


@contextlib.contextmanager
def raw_request(
    client: Client, body: dict[str, Any], receive_buffer: int | None = None
) -> Iterator[socket.socket]:
    """A request on a plain socket that this test closes (or never reads) at will."""
    payload = orjson.dumps(body)
    with socket.socket() as sock:
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.connect((client.server.host, client.server.port))
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        yield sock


async def _in_flight_is(client: Client, value: float) -> bool:
    return await metric(client, "agent_requests_in_flight") == value


# --- deadlines ---------------------------------------------------------------------------


async def test_deadline_before_the_stream_starts_is_a_504(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(hang=True)
    client = await make_service(
        openai_env(fake_openai[1], REQUEST_DEADLINE_SECONDS="0.3", SSE_HEARTBEAT_SECONDS="0")
    )
    for stream in (False, True):
        response = await client.post("/invocations", json={**HELLO, "stream": stream})
        assert response.status == 504
        error = (await response.json())["error"]
        assert error["code"] == "deadline_exceeded"
    assert await metric(client, "agent_cancellations_total", reason="deadline_exceeded") == 2


async def test_deadline_after_the_stream_started_is_a_terminal_event(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(tokens=("tok",) * 500, chunk_delay_s=0.02)
    env = openai_env(
        fake_openai[1], REQUEST_DEADLINE_SECONDS="0.4", AGENT_TASK="agent/v1/responses"
    )
    client = await make_service(env)
    chat = decode(
        [await (await client.post("/v1/chat/completions", json={**HELLO, "stream": True})).read()]
    )
    assert chat[-1].data == "[DONE]"
    assert chat[-2].json()["error"]["code"] == "deadline_exceeded"
    assert len(chat) > 4, "tokens streamed before the deadline"

    responses = decode(
        [await (await client.post("/v1/responses", json={"input": "Hi", "stream": True})).read()]
    )
    kinds = [event.event for event in responses]
    assert kinds[-2:] == ["error", "response.failed"]
    assert responses[-2].json()["code"] == "deadline_exceeded"
    failed = responses[-1].json()["response"]
    assert failed["status"] == "failed"
    assert failed["output"][0]["content"][0]["text"].startswith("tok")


# --- a reader that stops reading ---------------------------------------------------------


async def test_a_stalled_reader_does_not_hold_the_worker(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, tmp_path: Path
) -> None:
    script = tmp_path / "long.json"
    # Long tokens: the buffers between us and the client fill after few events.
    script.write_bytes(orjson.dumps([{"text": ("x" * 4000 + " ") * 5000}]))
    client = await make_service({"OFFLINE_SCRIPT": str(script), "SSE_WRITE_TIMEOUT_SECONDS": "0.3"})
    # A client that asks, then never reads: its receive buffer fills, then ours.
    with raw_request(client, {**HELLO, "stream": True}, receive_buffer=4096):
        await until(lambda: _cancelled(client, "stalled_reader"), what="the stream is dropped")
    await until(lambda: _in_flight_is(client, 0), what="in-flight back to 0")


async def _cancelled(client: Client, reason: str) -> bool:
    return await metric(client, "agent_cancellations_total", reason=reason) == 1


# --- admission, readiness, drain ---------------------------------------------------------


async def test_requests_past_the_limit_are_refused_at_once(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(hang=True)
    probe = Probe()
    client = await probed_service(make_service, fake_openai, probe, MAX_CONCURRENT_REQUESTS="1")
    first = asyncio.create_task(client.post("/invocations", json=HELLO))
    async with asyncio.timeout(PATIENCE_S):
        await probe.started.wait()
    refused = await client.post("/invocations", json=HELLO)
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    error = (await refused.json())["error"]
    assert error["code"] == "overloaded"
    assert error["type"] == "server_error"
    assert (await client.get("/health")).status == 200, "probes are not agent requests"
    assert await metric(client, "agent_rejections_total", reason="overloaded") == 1
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first


async def test_draining_turns_readiness_off_and_ends_open_streams(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(tokens=("tok",) * 1000, chunk_delay_s=0.02)
    client = await make_service(openai_env(fake_openai[1], AGENT_TASK="agent/v1/responses"))
    assert (await client.get("/ready")).status == 200
    chat = await client.post("/v1/chat/completions", json={**HELLO, "stream": True})
    responses = await client.post("/v1/responses", json={"input": "Hi", "stream": True})
    for stream in (chat, responses):
        await stream.content.readany()
    assert client.app is not None
    drain = asyncio.create_task(client.app[GATE].drain(0.2))
    ready = await client.get("/ready")
    assert ready.status == 503
    assert (await ready.json())["status"] == "draining"
    refused = await client.post("/invocations", json={"input": "Hi"})
    assert refused.status == 503
    assert (await refused.json())["error"]["code"] == "server_shutting_down"

    chat_events = decode([await chat.read()])
    assert chat_events[-1].data == "[DONE]"
    assert chat_events[-2].json()["error"]["code"] == "server_shutting_down"
    response_events = decode([await responses.read()])
    assert [e.event for e in response_events][-2:] == ["error", "response.failed"]
    await drain
    assert await metric(client, "agent_cancellations_total", reason="server_shutting_down") == 2


# --- metrics -----------------------------------------------------------------------------


async def test_metrics_after_known_traffic(make_service: ServiceFactory) -> None:
    client = await make_service()
    for _ in range(3):
        assert (await client.post("/invocations", json=HELLO)).status == 200
    streamed = await client.post("/v1/chat/completions", json={**HELLO, "stream": True})
    frames = len(decode([await streamed.read()])) - 1  # [DONE] is framing, not an event
    assert (await client.post("/invocations", json={"messages": []})).status == 400
    assert (await client.get("/nowhere")).status == 404

    assert await metric(client, "agent_requests_total", route="/invocations", status="200") == 3
    assert await metric(client, "agent_requests_total", route="/invocations", status="400") == 1
    assert (
        await metric(client, "agent_requests_total", route="/v1/chat/completions", status="200")
        == 1
    )
    assert await metric(client, "agent_requests_total", route="unmatched", status="404") == 1
    assert await metric(client, "agent_stream_events_total", route="/v1/chat/completions") == frames
    assert (
        await metric(
            client, "agent_time_to_first_token_seconds_count", route="/v1/chat/completions"
        )
        == 1
    )
    assert await metric(client, "agent_request_duration_seconds_count", route="/invocations") == 4
    assert await metric(client, "agent_requests_in_flight") == 0


async def test_upstream_errors_are_counted_by_kind(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    client = await make_service(openai_env(fake_openai[1]))
    for status in (429, 500, 401):
        fake.behaviour = Behaviour(status=status)
        await client.post("/invocations", json=HELLO)
    assert await metric(client, "agent_upstream_errors_total", kind="upstream_rate_limited") == 1
    assert await metric(client, "agent_upstream_errors_total", kind="upstream_error") == 1
    assert (
        await metric(client, "agent_upstream_errors_total", kind="upstream_authentication_failed")
        == 1
    )


# --- security ----------------------------------------------------------------------------


async def test_bearer_keys(make_service: ServiceFactory) -> None:
    client = await make_service({"AGENT_API_KEYS": "key-one, key-two"})
    missing = await client.post("/invocations", json=HELLO)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    error = (await missing.json())["error"]
    assert error["type"] == "authentication_error"
    wrong = await client.post(
        "/invocations", json=HELLO, headers={"Authorization": "Bearer key-three"}
    )
    assert wrong.status == 401
    for key in ("key-one", "key-two"):
        ok = await client.post(
            "/invocations", json=HELLO, headers={"Authorization": f"Bearer {key}"}
        )
        assert ok.status == 200
    assert (await client.get("/health")).status == 200
    assert (await client.get("/ready")).status == 200
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/agent/info")).status == 401


async def test_the_users_own_token_reaches_the_agent_and_nothing_else(
    make_service: ServiceFactory,
    fake_openai: FakeEndpoint,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    probe = Probe()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = await probed_service(
        make_service, fake_openai, probe, AGENT_TRACING="true", MLFLOW_TRACKING_URI=store
    )
    token = "dapi-user-token-0123456789"
    response = await client.post(
        "/invocations", json=HELLO, headers={"X-Forwarded-Access-Token": token}
    )
    assert response.status == 200
    assert probe.user_tokens == [token]
    assert token not in caplog.text
    import mlflow

    assert client.app is not None
    assert await client.app[AGENT].tracer.flush()
    trace = await asyncio.to_thread(mlflow.get_trace, response.headers["x-mlflow-trace-id"])
    assert trace is not None
    assert token not in trace.to_json()
    second = await client.post("/invocations", json=HELLO)
    assert second.status == 200
    assert probe.user_tokens == [token, None], "for that request only"


def test_log_lines_never_carry_credentials() -> None:
    formatter = RedactingFormatter("%(message)s")
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "call failed: Authorization: Bearer %s",
        ("sk-live-abcdef0123456789",),
        None,
    )
    assert formatter.format(record) == "call failed: Authorization: Bearer ***"


async def test_cors_is_off_by_default(service: Client) -> None:
    preflight = await service.options(
        "/invocations",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = await service.post(
        "/invocations", json=HELLO, headers={"Origin": "https://app.example"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_allow_list(make_service: ServiceFactory) -> None:
    client = await make_service({"CORS_ALLOW_ORIGINS": "https://app.example"})
    preflight = await client.options(
        "/invocations",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"]
    answer = await client.post(
        "/invocations", json=HELLO, headers={"Origin": "https://app.example"}
    )
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "x-request-id" in answer.headers["Access-Control-Expose-Headers"]
    error = await client.post("/invocations", json={}, headers={"Origin": "https://app.example"})
    assert error.status == 400
    assert error.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = await client.options(
        "/invocations",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.status == 403
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_oversized_headers_are_refused(aiohttp_server: AiohttpServer) -> None:
    server = await aiohttp_server(await create_app(settings_for({"MAX_HEADER_BYTES": "2048"})))
    async with ClientSession(timeout=ClientTimeout(total=PATIENCE_S)) as session:
        response = await session.post(
            server.make_url("/invocations"), json=HELLO, headers={"X-Big": "x" * 4096}
        )
        assert response.status in (400, 431)
        ok = await session.post(
            server.make_url("/invocations"), json=HELLO, headers={"X-Small": "x" * 512}
        )
        assert ok.status == 200
