"""The client's view of our wire formats, for tests: validation against the OpenAI SDK's and
MLflow's own types and our bundled schemas, aggregation of streams the way clients do it,
and normalisation of the ids and timestamps that differ between two runs."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from mlflow.types.agent import ChatAgentChunk, ChatAgentResponse
from mlflow.types.responses import ResponsesAgentResponse, ResponsesAgentStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from agent_service.schemas import bundled
from tests.open_responses import check_open_responses_body, check_open_responses_event
from tests.sse_decoder import SSEEvent, decode

Client = TestClient[Any, Any]

# The smallest request of each protocol, for tests that need an answer, not a conversation.
HELLO = {"messages": [{"role": "user", "content": "Hello"}]}
HELLO_RESPONSES = {"input": [{"role": "user", "content": "Hello"}]}

_RESPONSE_EVENT = TypeAdapter(ResponseStreamEvent)


def check_schema(name: str, instance: object) -> None:
    problem = bundled().first_problem(name, instance)
    assert problem is None, f"{name}: {problem}"


def check_chat_completion(body: dict[str, Any]) -> None:
    check_schema("agent-v1-chat.response", body)
    ChatCompletion.model_validate(body, strict=False)


def check_chat_chunk(chunk: dict[str, Any]) -> None:
    check_schema("agent-v1-chat.chunk", chunk)
    ChatCompletionChunk.model_validate(chunk)


def check_chat_agent_response(body: dict[str, Any]) -> None:
    check_schema("agent-v2-chat.response", body)
    ChatAgentResponse.model_validate(body)


def check_chat_agent_chunk(chunk: dict[str, Any]) -> None:
    check_schema("agent-v2-chat.chunk", chunk)
    ChatAgentChunk.model_validate(chunk)


def check_response(body: dict[str, Any]) -> None:
    check_schema("agent-v1-responses.response", body)
    check_open_responses_body(body)
    Response.model_validate(body)
    if not _has_mcp_calls(body):
        ResponsesAgentResponse.model_validate(body)


def check_response_event(event: dict[str, Any]) -> None:
    check_schema("agent-v1-responses.event", event)
    check_open_responses_event(event)
    _RESPONSE_EVENT.validate_python(event)
    if not _has_mcp_calls(event.get("response") or {"output": [event.get("item") or {}]}):
        ResponsesAgentStreamEvent.model_validate(event)
    if "response" in event:
        Response.model_validate(event["response"])


def _has_mcp_calls(response: dict[str, Any]) -> bool:
    """MLflow's ResponsesAgent types judge MLflow's convention (/invocations: the agent's
    tools as function_call + function_call_output); the OpenAI routes show them as OpenAI's
    mcp_call items, which MLflow's types do not know."""
    return any(item.get("type") == "mcp_call" for item in response.get("output") or ())


async def stream(client: Client, path: str, body: dict[str, Any]) -> list[SSEEvent]:
    response = await client.post(path, json={**body, "stream": True})
    assert response.status == 200, await response.text()
    return decode([await response.read()])


def data_frames(events: list[SSEEvent]) -> list[dict[str, Any]]:
    """The JSON payloads of a data-only stream that ends with [DONE]."""
    assert events[-1].data == "[DONE]"
    assert all(event.event == "message" for event in events), "no event: lines here"
    return [event.json() for event in events[:-1]]


def named_frames(events: list[SSEEvent]) -> list[dict[str, Any]]:
    """The payloads of an OpenAI Responses stream: `event:` matches `type`, no [DONE]."""
    payloads = [event.json() for event in events]
    assert all(
        event.event == payload["type"] for event, payload in zip(events, payloads, strict=True)
    )
    return payloads


def aggregate_chat_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat.completion from chunks, the way the OpenAI SDK's stream helpers build one."""
    first = chunks[0]
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    custom_outputs = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        custom_outputs = chunk.get("custom_outputs", custom_outputs)
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            for fragment in delta.get("tool_calls") or ():
                call = calls.setdefault(
                    fragment["index"],
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = fragment.get("id") or call["id"]
                function = fragment.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
            finish = choice["finish_reason"] or finish
    text = "".join(content)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    body: dict[str, Any] = {
        "id": first["id"],
        "object": "chat.completion",
        "created": first["created"],
        "model": first["model"],
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    if custom_outputs is not None:
        body["custom_outputs"] = custom_outputs
    return body


def aggregate_chat_agent_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A ChatAgentResponse from chunks: messages aggregated by id, as MLflow's clients do."""
    messages: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    for chunk in chunks:
        delta = chunk["delta"]
        message = messages.get(delta["id"])
        if message is None:
            messages[delta["id"]] = message = {**delta, "content": delta.get("content")}
        else:
            if delta.get("content") is not None:
                message["content"] = (message.get("content") or "") + delta["content"]
            if delta.get("tool_calls"):
                message["tool_calls"] = message.get("tool_calls", []) + delta["tool_calls"]
        for key in ("finish_reason", "usage", "custom_outputs"):
            if key in chunk:
                extra[key] = chunk[key]
    ids = {chunk.get("id") for chunk in chunks if "delta" in chunk}
    assert len(ids) <= 1, f"the chunks of one answer carry one answer id, not {ids}"
    answer_id = {"id": ids.pop()} if ids and None not in ids else {}
    return {**answer_id, "messages": list(messages.values()), **extra}


_VARYING = frozenset(
    {"id", "call_id", "item_id", "tool_call_id", "created", "created_at", "completed_at"}
)


def normalise(value: Any) -> Any:
    """Replace ids and timestamps by placeholders numbered in order of first appearance, so
    two runs of the same request compare equal while references between items still must
    match (a function_call_output's call_id is its function_call's)."""
    seen: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    placeholder(key, item) if key in _VARYING and item is not None else walk(item)
                )
                for key, item in node.items()
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    def placeholder(key: str, item: Any) -> str:
        if key in ("created", "created_at", "completed_at"):
            return "<time>"
        return seen.setdefault(str(item), f"<id{len(seen)}>")

    return walk(value)
