"""agent/v1/chat through the real app factory on the offline model: bodies, streams, params."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agent_service.models.offline import OFFLINE_NOTICE, tokenize
from agent_service.schemas import bundled
from tests.conftest import ServiceFactory
from tests.sse_decoder import SSEEvent, decode
from tests.wire import HELLO, Client


def assert_matches_schema(name: str, instance: object) -> None:
    problem = bundled().first_problem(name, instance)
    assert problem is None, f"{name}: {problem}"


async def post_stream(
    client: Client, path: str, body: dict[str, Any]
) -> tuple[bytes, list[SSEEvent]]:
    response = await client.post(path, json={**body, "stream": True})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert "Content-Encoding" not in response.headers
    raw = await response.read()
    return raw, decode([raw])


def chunks_of(events: list[SSEEvent]) -> list[dict[str, Any]]:
    assert events[-1].data == "[DONE]", "a Chat Completions stream ends with [DONE]"
    return [event.json() for event in events[:-1]]


@pytest.mark.parametrize("path", ["/invocations", "/v1/chat/completions"])
async def test_json_answer_has_every_field_openai_requires(service: Client, path: str) -> None:
    response = await service.post(path, json=HELLO)
    assert response.status == 200
    body = await response.json()
    assert_matches_schema("agent-v1-chat.response", body)
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "agent-service"
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert "logprobs" in choice
    assert choice["logprobs"] is None
    message = choice["message"]
    assert message["role"] == "assistant"
    assert message["refusal"] is None
    assert message["content"].startswith(OFFLINE_NOTICE)
    assert 'You said: "Hello"' in message["content"]
    usage = body["usage"]
    assert usage["completion_tokens"] == len(tokenize(message["content"]))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "custom_outputs" not in body


async def test_model_field_echoes_the_request(service: Client) -> None:
    response = await service.post("/invocations", json={**HELLO, "model": "my-agent"})
    body = await response.json()
    assert body["model"] == "my-agent"


async def test_stream_is_token_by_token_and_agrees_with_json(service: Client) -> None:
    _, events = await post_stream(service, "/invocations", HELLO)
    chunks = chunks_of(events)
    for chunk in chunks:
        assert_matches_schema("agent-v1-chat.chunk", chunk)
        assert "usage" not in chunk, "usage only when include_usage is asked for"
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert len({chunk["created"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert all(contents), "every middle chunk carries one token"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + [
        "stop"
    ]
    streamed = "".join(str(content) for content in contents)
    assert len(contents) == len(tokenize(streamed)) > 10

    answer = await (await service.post("/invocations", json=HELLO)).json()
    assert streamed == answer["choices"][0]["message"]["content"]


async def test_stream_golden_bytes(service: Client) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "model": "m"}
    raw, _ = await post_stream(service, "/v1/chat/completions", body)
    normalised = re.sub(rb'"id":"chatcmpl-[0-9a-f]{32}"', b'"id":"ID"', raw)
    normalised = re.sub(rb'"created":\d+', b'"created":0', normalised)
    head = (
        b'{"id":"ID","object":"chat.completion.chunk","created":0,"model":"m",'
        b'"choices":[{"index":0,"delta":'
    )
    tail = b',"logprobs":null,"finish_reason":%s}]}'
    expected = b"".join(
        b"data: " + head + delta + tail % finish + b"\n\n"
        for delta, finish in [
            (b'{"role":"assistant","content":""}', b"null"),
            (b'{"content":"This"}', b"null"),
            (b'{"content":" is"}', b"null"),
            (b'{"content":" the"}', b"null"),
            (b"{}", b'"length"'),
        ]
    )
    assert normalised == expected + b"data: [DONE]\n\n"


async def test_include_usage_adds_null_usage_and_a_final_usage_chunk(service: Client) -> None:
    _, events = await post_stream(
        service, "/invocations", {**HELLO, "stream_options": {"include_usage": True}}
    )
    chunks = chunks_of(events)
    *content_chunks, usage_chunk = chunks
    assert all(chunk["usage"] is None for chunk in content_chunks)
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in content_chunks)
    assert usage["completion_tokens"] == len(tokenize(streamed))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert_matches_schema("agent-v1-chat.chunk", usage_chunk)


async def test_include_usage_false_sends_no_usage(service: Client) -> None:
    _, events = await post_stream(
        service, "/invocations", {**HELLO, "stream_options": {"include_usage": False}}
    )
    assert all("usage" not in chunk for chunk in chunks_of(events))


async def test_custom_inputs_come_back_as_custom_outputs(service: Client) -> None:
    custom = {"session": "s-1", "flags": [1, 2]}
    body = await (
        await service.post("/invocations", json={**HELLO, "custom_inputs": custom})
    ).json()
    assert body["custom_outputs"] == custom

    _, events = await post_stream(service, "/invocations", {**HELLO, "custom_inputs": custom})
    carrying = [chunk for chunk in chunks_of(events) if "custom_outputs" in chunk]
    assert [chunk["custom_outputs"] for chunk in carrying] == [custom]
    assert carrying[0]["choices"][0]["finish_reason"] == "stop"


async def test_max_tokens_and_stop_reach_the_model(service: Client) -> None:
    body = await (await service.post("/invocations", json={**HELLO, "max_tokens": 4})).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "This is the offline"

    body = await (await service.post("/invocations", json={**HELLO, "stop": [" offline"]})).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == "This is the"


async def test_stream_false_is_a_json_answer(service: Client) -> None:
    response = await service.post("/invocations", json={**HELLO, "stream": False})
    assert response.content_type == "application/json"
    assert (await response.json())["object"] == "chat.completion"


async def test_unknown_fields_are_accepted(service: Client) -> None:
    response = await service.post(
        "/invocations", json={**HELLO, "some_future_field": {"x": 1}, "store": True}
    )
    assert response.status == 200


async def test_multi_turn_history_with_all_roles(service: Client) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "No emojis."},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calc", "arguments": '{"e":"2+2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "4"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    response = await service.post("/invocations", json={"messages": messages})
    assert response.status == 200, await response.text()
    content = (await response.json())["choices"][0]["message"]["content"]
    assert 'You said: "And 3+3?"' in content


async def test_agent_info_and_health(service: Client) -> None:
    info = await (await service.get("/agent/info")).json()
    assert info["name"] == "agent-service"
    assert info["use_case"] == "agent"
    assert info["agent_api"] == "agent/v1/chat"
    assert info["model"]["backend"] == "offline"
    assert info["version"]
    health = await service.get("/health")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"


async def test_task_and_name_come_from_settings(make_service: ServiceFactory) -> None:
    client = await make_service({"AGENT_NAME": "support-bot"})
    info = await (await client.get("/agent/info")).json()
    assert info["name"] == "support-bot"
    body = await (await client.post("/invocations", json=HELLO)).json()
    assert body["model"] == "support-bot"
