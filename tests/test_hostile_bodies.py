"""Bodies built to hurt: each gets a clear 4xx in the OpenAI envelope naming what is wrong,
never a 500, never an unbounded amount of work. What each costs the event loop is measured
in bench/ (`python -m bench.hostile`), never asserted here."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson
import pytest

from tests.conftest import ServiceFactory
from tests.test_http_errors import envelope
from tests.test_production import metric
from tests.wire import Client

USER = {"role": "user", "content": "Hello"}


def nested(levels: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


async def post_raw(client: Client, path: str, body: bytes, **headers: str) -> Any:
    return await client.post(
        path, data=body, headers={"Content-Type": "application/json", **headers}
    )


# --- nesting ------------------------------------------------------------------------------


def deep(levels: int) -> bytes:
    """`levels` nested lists around a string, as JSON (too deep for json.dumps to write)."""
    return b"[" * levels + b'"x"' + b"]" * levels


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        pytest.param(
            "/invocations",
            b'{"messages": [{"role": "user", "content": "Hi"}], "custom_inputs": {"k": %s}}'
            % deep(1000),
            "$.custom_inputs.k" + "[0]" * 62,
            id="chat-custom-inputs-1000-deep",
        ),
        pytest.param(
            "/v1/responses",
            b'{"input": "Hi", "stream": true, "custom_inputs": {"k": %s}}' % deep(300),
            "$.custom_inputs.k" + "[0]" * 62,
            id="responses-stream-custom-inputs-300-deep",
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": %s}]}' % deep(1000),
            "$.messages[0].content" + "[0]" * 61,
            id="message-content-1000-deep",
        ),
        pytest.param(
            "/invocations",
            b'{"messages": [{"role": "user", "content": "Hi"}], "unknown_field": %s}' % deep(100),
            "$.unknown_field" + "[0]" * 63,
            id="unknown-field-100-deep",
        ),
    ],
)
async def test_nesting_past_64_levels_is_a_400_naming_where(
    make_service: ServiceFactory, path: str, body: bytes, param: str
) -> None:
    client = await make_service()
    error = await envelope(await post_raw(client, path, body), 400)
    assert error["code"] == "too_deep"
    assert error["param"] == param
    assert "deeper than 64 levels" in error["message"]


async def test_nesting_up_to_64_levels_is_accepted(make_service: ServiceFactory) -> None:
    client = await make_service()
    # The body is level 1, custom_inputs 2, "k" (the outermost of 62 lists) 3: the innermost
    # list is at level 64.
    body = {"messages": [USER], "custom_inputs": {"k": nested(62)}}
    response = await client.post("/invocations", json=body)
    assert response.status == 200, await response.text()
    assert (await response.json())["custom_outputs"] == {"k": nested(62)}


# --- sizes the schemas bound ---------------------------------------------------------------


async def test_a_conversation_over_2048_messages_is_refused_before_it_is_explained(
    make_service: ServiceFactory,
) -> None:
    client = await make_service()
    body = {"messages": [{"role": "robot", "content": "x"}] + [USER] * 3000}
    error = await envelope(await client.post("/invocations", json=body), 400)
    assert error["param"] == "$.messages"
    assert "has too many items (at most 2048)" in error["message"]


@pytest.mark.parametrize(
    ("path", "field", "limit"),
    [("/v1/chat/completions", "messages", 2048), ("/v1/responses", "input", 4096)],
)
async def test_one_bad_item_in_the_largest_conversation_is_named(
    make_service: ServiceFactory, path: str, field: str, limit: int
) -> None:
    client = await make_service()
    items = [USER] * limit
    items[-1] = {"role": "robot", "content": "x"}
    error = await envelope(await client.post(path, json={field: items}), 400)
    assert error["param"] == f"$.{field}[{limit - 1}].role"
    assert "'robot' is not one of" in error["message"]


async def test_too_many_tools_is_a_400(make_service: ServiceFactory) -> None:
    client = await make_service()
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {"messages": [USER], "tools": [tool] * 129}
    error = await envelope(await client.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == "$.tools"
    assert "at most 128" in error["message"]


async def test_a_key_that_is_not_a_plain_name_is_quoted_in_the_path(
    make_service: ServiceFactory,
) -> None:
    client = await make_service()
    body = {"messages": [USER], "metadata": {"a\nINFO forged line": 5}}
    error = await envelope(await client.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == '$.metadata["a\\nINFO forged line"]'
    assert "\n" not in error["message"]


# --- structure and encoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"messages": [], "x": [' + b"{}," * 100_000 + b"{}]}", id="objects"),
        pytest.param(b'{"messages": [], "x": [' + b"0," * 250_001 + b"0]}", id="numbers"),
    ],
)
async def test_more_structure_than_a_conversation_needs_is_a_413_before_parsing(
    make_service: ServiceFactory, payload: bytes
) -> None:
    client = await make_service()
    error = await envelope(await post_raw(client, "/invocations", payload), 413)
    assert error["code"] == "too_much_structure"
    assert "more than" in error["message"]


async def test_a_gzip_bomb_is_refused_without_inflating_it(make_service: ServiceFactory) -> None:
    client = await make_service()
    # 64 MiB of zeros in 64 KiB: inflated, it would be far over MAX_BODY_BYTES (a 413).
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    response = await post_raw(client, "/invocations", bomb, **{"Content-Encoding": "gzip"})
    error = await envelope(response, 415)
    assert error["code"] == "unsupported_content_encoding"
    assert response.headers["Accept-Encoding"] == "identity"


async def test_an_identity_content_encoding_is_fine(make_service: ServiceFactory) -> None:
    client = await make_service()
    body = orjson.dumps({"messages": [USER]})
    response = await post_raw(client, "/invocations", body, **{"Content-Encoding": "identity"})
    assert response.status == 200


# --- the loop-lag monitor ---------------------------------------------------------------------


async def test_the_event_loop_lag_is_on_the_metrics(make_service: ServiceFactory) -> None:
    client = await make_service()
    async with asyncio.timeout(30):
        # Samples come every 10 ms: wait (bounded) until some are counted.
        while await metric(client, "agent_event_loop_lag_seconds_count") < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    text = await (await client.get("/metrics")).text()
    assert 'agent_event_loop_lag_seconds_bucket{le="0.05"}' in text
    assert "agent_event_loop_lag_max_seconds" in text
