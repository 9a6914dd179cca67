"""A model endpoint that answers garbage is an upstream failure: 502 `upstream_error` (or the
terminal error event once a stream has started), one log line, no traceback, counted.

The fake endpoint sends what broken gateways and misrouted proxies send: HTML, nothing, an
error object with status 200, bytes that are not Server-Sent Events, a chunk that is not JSON.
"""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI, valid_chunk
from tests.log_capture import server_log
from tests.sse_decoder import decode
from tests.test_production import metric
from tests.wire import HELLO

HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
ERROR_OBJECT = {"error": {"message": "The server had an error.", "type": "server_error"}}

GARBAGE = [
    pytest.param(HTML, "text/html", id="html"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(orjson.dumps(ERROR_OBJECT), "application/json", id="error-object"),
    pytest.param(b"not json at all", "application/json", id="not-json"),
    pytest.param(b"[1, 2, 3]", "application/json", id="json-of-the-wrong-shape"),
    pytest.param(
        b"data: " + orjson.dumps(ERROR_OBJECT) + b"\n\n", "text/event-stream", id="sse-error"
    ),
    pytest.param(b"event: ???\nthis is not SSE\n\n", "text/event-stream", id="invalid-sse"),
    pytest.param(b"data: {not json\n\n", "text/event-stream", id="non-json-chunk"),
    pytest.param(b"data: [DONE]\n\n", "text/event-stream", id="done-and-nothing-else"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("garbage", "content_type"), GARBAGE)
async def test_garbage_before_the_answer_is_a_502(
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
    garbage: bytes,
    content_type: str,
    stream: bool,
) -> None:
    fake, server = fake_openai
    fake.behaviour = Behaviour(garbage=garbage, garbage_type=content_type)
    client = await make_service(openai_env(server))
    with server_log() as log:
        response = await client.post("/invocations", json={**HELLO, "stream": stream})
        assert response.status == 502, await response.text()
        error = (await response.json())["error"]
    assert error["code"] == "upstream_error"
    assert error["type"] == "server_error"
    assert_logged_once(log.lines)
    assert await metric(client, "agent_upstream_errors_total", kind="upstream_error") == 1


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"data: {not json\n\n", id="non-json-chunk"),
        pytest.param(b"data: " + orjson.dumps(ERROR_OBJECT) + b"\n\n", id="sse-error"),
        pytest.param(b"data: <html>oops</html>\n\n", id="html-chunk"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
async def test_garbage_mid_stream_is_the_terminal_error_event(
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
    garbage: bytes,
    path: str,
) -> None:
    fake, server = fake_openai
    fake.behaviour = Behaviour(
        garbage=valid_chunk("Hello") + valid_chunk(" there") + garbage,
        garbage_type="text/event-stream",
    )
    client = await make_service(openai_env(server))
    body = {"input": "Hello"} if path == "/v1/responses" else HELLO
    with server_log() as log:
        response = await client.post(path, json={**body, "stream": True})
        assert response.status == 200
        events = decode([await response.read()])
    if path == "/v1/responses":
        assert [e.event for e in events][-2:] == ["error", "response.failed"]
        assert events[-2].json()["code"] == "upstream_error"
        failed = events[-1].json()["response"]
        assert failed["output"][0]["content"][0]["text"] == "Hello there"
    else:
        assert events[-1].data == "[DONE]"
        assert events[-2].json()["error"]["code"] == "upstream_error"
        assert events[1].json()["choices"][0]["delta"]["content"] == "Hello"
    assert_logged_once(log.lines)


def assert_logged_once(lines: list[str]) -> None:
    """One line says the model endpoint failed; nothing looks like a bug of ours."""
    failures = [line for line in lines if " ERROR " in line or " WARNING " in line]
    assert len(failures) == 1, "\n".join(lines)
    assert "model endpoint" in failures[0]
    text = "\n".join(lines)
    assert "Traceback" not in text
    assert "Unhandled" not in text
