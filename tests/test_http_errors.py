"""Every refusal is a real HTTP status with the OpenAI error envelope and the request id."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from agent_service.schemas import bundled
from tests.conftest import ServiceFactory
from tests.wire import HELLO, Client


async def envelope(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert bundled().first_problem("error", body) is None, body
    request_id = response.headers["X-Request-Id"]
    assert f"(request id: {request_id})" in body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "code", "fragment"),
    [
        ({"messages": []}, "$.messages", "invalid_value", "should be non-empty"),
        ({}, "$", "missing_required_parameter", "'messages' is a required property"),
        ({"messages": [{"role": "user", "content": 5}]}, "$.messages[0].content", None, "content"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "$.messages[0].role", None, "role"),
        ({**HELLO, "temperature": 3}, "$.temperature", "invalid_value", "3"),
        ({**HELLO, "stream": "yes"}, "$.stream", "invalid_type", "'yes'"),
        (
            {**HELLO, "stream_options": {"include_usage": "no"}},
            "$.stream_options.include_usage",
            "invalid_type",
            "'no'",
        ),
        ({**HELLO, "max_tokens": 0}, "$.max_tokens", "invalid_value", "0"),
        ({**HELLO, "custom_inputs": [1]}, "$.custom_inputs", "invalid_type", "object"),
    ],
    ids=[
        "empty-messages",
        "no-messages",
        "content-type",
        "bad-role",
        "temperature",
        "stream-type",
        "include-usage-type",
        "max-tokens",
        "custom-inputs",
    ],
)
async def test_schema_failures_name_the_field(
    service: Client, body: dict[str, Any], param: str, code: str | None, fragment: str
) -> None:
    error = await envelope(await service.post("/invocations", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert fragment in error["message"]
    assert error["message"].startswith("$" if param != "$" else "the request body")


@pytest.mark.parametrize(
    ("task", "path", "body", "speaks", "advice"),
    [
        (
            "agent/v1/responses",
            "/invocations",
            HELLO,
            "/invocations speaks OpenAI Responses (AGENT_TASK=agent/v1/responses)",
            "Send OpenAI Chat Completions requests to /v1/chat/completions, or choose what "
            "/invocations speaks with AGENT_TASK (agent/v1/chat, agent/v2/chat).",
        ),
        (
            "agent/v1/chat",
            "/invocations",
            {"input": "Hello"},
            "/invocations speaks OpenAI Chat Completions (AGENT_TASK=agent/v1/chat)",
            "Send OpenAI Responses requests to /v1/responses, or choose what /invocations "
            "speaks with AGENT_TASK (agent/v1/responses).",
        ),
        (
            "agent/v2/chat",
            "/invocations",
            {"input": "Hello"},
            "/invocations speaks MLflow ChatAgent (AGENT_TASK=agent/v2/chat)",
            "Send OpenAI Responses requests",
        ),
        (
            "agent/v1/chat",
            "/v1/responses",
            HELLO,
            "/v1/responses speaks OpenAI Responses,",
            "Send OpenAI Chat Completions requests to /v1/chat/completions. (request id",
        ),
    ],
    ids=["responses-got-messages", "chat-got-input", "chat-agent-got-input", "v1-responses"],
)
async def test_a_body_of_another_protocol_is_told_what_the_route_speaks(
    make_service: ServiceFactory,
    task: str,
    path: str,
    body: dict[str, Any],
    speaks: str,
    advice: str,
) -> None:
    service = await make_service({"AGENT_TASK": task})
    error = await envelope(await service.post(path, json=body), 400)
    assert error["message"].startswith(speaks)
    assert advice in error["message"]
    assert error["param"] in ("$.input", "$.messages")
    assert error["code"] == "missing_required_parameter"


async def test_tool_message_without_tool_call_id(service: Client) -> None:
    body = {"messages": [{"role": "tool", "content": "4"}]}
    error = await envelope(await service.post("/invocations", json=body), 400)
    assert error["param"].startswith("$.messages[0]")
    assert "tool_call_id" in error["message"]


async def test_invalid_json(service: Client) -> None:
    response = await service.post(
        "/invocations", data=b'{"messages": [', headers={"Content-Type": "application/json"}
    )
    error = await envelope(response, 400)
    assert error["code"] == "invalid_json"
    assert re.search(r"not valid JSON \(line 1, column \d+\)", error["message"])


@pytest.mark.parametrize(
    ("raw", "kind"), [(b"[1, 2]", "an array"), (b'"hi"', "a string"), (b"null", "null")]
)
async def test_body_that_is_not_an_object(service: Client, raw: bytes, kind: str) -> None:
    response = await service.post(
        "/invocations", data=raw, headers={"Content-Type": "application/json"}
    )
    error = await envelope(response, 400)
    assert error["param"] == "$"
    assert f"must be a JSON object, not {kind}" in error["message"]


async def test_empty_body(service: Client) -> None:
    response = await service.post(
        "/invocations", data=b"", headers={"Content-Type": "application/json"}
    )
    error = await envelope(response, 400)
    assert "empty" in error["message"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_wrong_content_type(service: Client, content_type: str) -> None:
    response = await service.post(
        "/invocations", data=b'{"messages":[]}', headers={"Content-Type": content_type}
    )
    error = await envelope(response, 415)
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.api+json"]
)
async def test_json_content_types_are_accepted(service: Client, content_type: str) -> None:
    response = await service.post(
        "/invocations",
        data=b'{"messages":[{"role":"user","content":"x"}]}',
        headers={"Content-Type": content_type},
    )
    assert response.status == 200


async def test_body_over_the_limit_declared_up_front(make_service: ServiceFactory) -> None:
    client = await make_service({"MAX_BODY_BYTES": "2048"})
    big = {"messages": [{"role": "user", "content": "x" * 4096}]}
    error = await envelope(await client.post("/invocations", json=big), 413)
    assert error["code"] == "payload_too_large"
    assert "2048 bytes" in error["message"]


async def test_body_over_the_limit_when_chunked(make_service: ServiceFactory) -> None:
    client = await make_service({"MAX_BODY_BYTES": "2048"})

    async def chunks() -> Any:
        yield b'{"messages":[{"role":"user","content":"'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}]}'

    response = await client.post(
        "/invocations", data=chunks(), headers={"Content-Type": "application/json"}
    )
    error = await envelope(response, 413)
    assert "2048 bytes" in error["message"]


async def test_default_body_limit_is_16_mib(service: Client) -> None:
    body = b'{"messages":[{"role":"user","content":"' + b"x" * (16 * 1024 * 1024) + b'"}]}'
    response = await service.post(
        "/invocations", data=io.BytesIO(body), headers={"Content-Type": "application/json"}
    )
    await envelope(response, 413)


async def test_unknown_route(service: Client) -> None:
    error = await envelope(await service.get("/v2/nothing-here"), 404)
    assert error["code"] == "not_found"
    assert "/v2/nothing-here" in error["message"]


async def test_wrong_method(service: Client) -> None:
    response = await service.get("/invocations")
    error = await envelope(response, 405)
    assert error["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"


async def test_request_id_is_taken_from_the_client(service: Client) -> None:
    response = await service.post("/invocations", json=HELLO, headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    streamed = await service.post(
        "/invocations", json={**HELLO, "stream": True}, headers={"X-Request-Id": "s-9"}
    )
    assert streamed.headers["X-Request-Id"] == "s-9"
    await streamed.read()


async def test_unsafe_request_id_is_replaced(service: Client) -> None:
    response = await service.post(
        "/invocations", json=HELLO, headers={"X-Request-Id": "x\u00e9" + "y" * 300}
    )
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])


async def test_generated_request_ids_differ(service: Client) -> None:
    first = await service.get("/health")
    second = await service.get("/health")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
