"""One agent, three protocols: every answer checked against the clients' own types, and the
streamed answer equal to the JSON answer for the same scripted run, with and without tools."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from agent_service.agents.default_graph import build_graph
from agent_service.agents.tools import select_tools
from agent_service.models.offline import OfflineChatModel, ScriptedToolCall, ScriptedTurn
from tests.conftest import ServiceFactory
from tests.wire import (
    Client,
    aggregate_chat_agent_chunks,
    aggregate_chat_chunks,
    check_chat_agent_chunk,
    check_chat_agent_response,
    check_chat_chunk,
    check_chat_completion,
    check_response,
    check_response_event,
    data_frames,
    named_frames,
    normalise,
    stream,
)

QUESTION = "What is 6*7?"
AGENT_TOOL = (
    ScriptedTurn(
        text="Let me compute.", tool_calls=(ScriptedToolCall("calculator", {"expression": "6*7"}),)
    ),
    ScriptedTurn(text="It is 42."),
)
CLIENT_TOOL = (
    ScriptedTurn(tool_calls=(ScriptedToolCall("get_weather", {"city": "Paris"}),)),
    ScriptedTurn(text="It is sunny in Paris."),
)
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CHAT_WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS},
}
RESPONSES_WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": WEATHER_PARAMETERS,
}

StartScripted = Callable[..., Awaitable[Client]]


@pytest.fixture
def scripted(make_service: ServiceFactory) -> StartScripted:
    async def start(task: str, script: tuple[ScriptedTurn, ...], **env: str) -> Client:
        graph = build_graph(OfflineChatModel(script=script), select_tools(("calculator",)))
        return await make_service({"AGENT_TASK": task, **env}, graph=graph)

    return start


# --- Chat Completions ------------------------------------------------------------------


async def chat_both(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await (await client.post("/invocations", json=body)).json()
    check_chat_completion(answer)
    streamed = {**body, "stream_options": {"include_usage": True}}
    chunks = data_frames(await stream(client, "/invocations", streamed))
    for chunk in chunks:
        check_chat_chunk(chunk)
    assert normalise(aggregate_chat_chunks(chunks)) == normalise(answer)
    return answer


async def test_chat_completions_hide_the_agents_own_tools(scripted: StartScripted) -> None:
    client = await scripted("agent/v1/chat", AGENT_TOOL)
    answer = await chat_both(client, {"messages": [{"role": "user", "content": QUESTION}]})
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == "Let me compute.\n\nIt is 42."
    assert answer["usage"]["completion_tokens"] > 0


async def test_chat_completions_return_client_tool_calls(scripted: StartScripted) -> None:
    client = await scripted("agent/v1/chat", CLIENT_TOOL)
    user = {"role": "user", "content": "Weather in Paris?"}
    answer = await chat_both(client, {"messages": [user], "tools": [CHAT_WEATHER_TOOL]})
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}

    # The client runs its tool and sends the result; the agent continues.
    history = [
        user,
        choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    final = await chat_both(client, {"messages": history, "tools": [CHAT_WEATHER_TOOL]})
    assert final["choices"][0]["message"]["content"] == "It is sunny in Paris."
    assert final["choices"][0]["finish_reason"] == "stop"


async def test_chat_completions_stream_client_tool_calls_as_indexed_fragments(
    scripted: StartScripted,
) -> None:
    client = await scripted("agent/v1/chat", CLIENT_TOOL)
    body = {"messages": [{"role": "user", "content": "Weather?"}], "tools": [CHAT_WEATHER_TOOL]}
    chunks = data_frames(await stream(client, "/v1/chat/completions", body))
    fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]
    assert all(f["index"] == 0 for f in fragments)
    first, *rest = fragments
    assert first["id"].startswith("call_")
    assert first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert rest, "arguments arrive in later fragments"
    assert all(set(f) == {"index", "function"} for f in rest)
    assert orjson.loads("".join(f["function"]["arguments"] for f in rest)) == {"city": "Paris"}


# --- ChatAgent -------------------------------------------------------------------------


async def chat_agent_both(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await (await client.post("/invocations", json=body)).json()
    check_chat_agent_response(answer)
    chunks = data_frames(await stream(client, "/invocations", body))
    for chunk in chunks:
        check_chat_agent_chunk(chunk)
    assert normalise(aggregate_chat_agent_chunks(chunks)) == normalise(answer)
    return answer


async def test_chat_agent_returns_every_message_with_a_unique_id(scripted: StartScripted) -> None:
    client = await scripted("agent/v2/chat", AGENT_TOOL)
    answer = await chat_agent_both(client, {"messages": [{"role": "user", "content": QUESTION}]})
    calling, result, final = answer["messages"]
    assert calling["role"] == "assistant"
    assert calling["content"] == "Let me compute."
    [call] = calling["tool_calls"]
    assert call["function"]["name"] == "calculator"
    assert result == {
        "role": "tool",
        "content": "42",
        "name": "calculator",
        "tool_call_id": call["id"],
        "id": result["id"],
    }
    assert final["content"] == "It is 42."
    assert len({m["id"] for m in answer["messages"]}) == 3
    assert answer["finish_reason"] == "stop"
    assert answer["usage"]["total_tokens"] > 0


async def test_chat_agent_plain_answer_and_custom_outputs(scripted: StartScripted) -> None:
    # Without state: the same request twice (JSON, then a stream) gets the same answer. With
    # state, a conversation id continues the conversation (tests/test_state_http.py).
    client = await scripted("agent/v2/chat", (), STATE_STORE="off")
    body = {
        "messages": [{"role": "user", "content": "Hi", "id": "u1"}],
        "context": {"conversation_id": "c-1", "user_id": "u-1"},
        "custom_inputs": {"k": "v"},
    }
    answer = await chat_agent_both(client, body)
    [message] = answer["messages"]
    assert message["content"].startswith("This is the offline model")
    assert answer["custom_outputs"] == {"k": "v"}


async def test_chat_agent_chunks_of_one_message_share_its_id(scripted: StartScripted) -> None:
    client = await scripted("agent/v2/chat", ())
    chunks = data_frames(
        await stream(client, "/invocations", {"messages": [{"role": "user", "content": "Hi"}]})
    )
    assert len(chunks) > 5
    assert len({chunk["delta"]["id"] for chunk in chunks}) == 1
    assert [("custom_outputs" in c, "finish_reason" in c) for c in chunks][-1] == (False, True)


# --- Responses -------------------------------------------------------------------------


async def responses_both(
    client: Client, body: dict[str, Any], path: str = "/invocations"
) -> dict[str, Any]:
    answer: dict[str, Any] = await (await client.post(path, json=body)).json()
    check_response(answer)
    events = await stream(client, path, body)
    payloads = data_frames(events) if path == "/invocations" else named_frames(events)
    for payload in payloads:
        check_response_event(payload)
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert payloads[0]["type"] == "response.created"
    assert payloads[1]["type"] == "response.in_progress"
    assert payloads[-1]["type"] == "response.completed"
    assert normalise(payloads[-1]["response"]) == normalise(answer)
    # Every item added is done, with the same index, in order.
    added = [
        (p["output_index"], p["item"]["id"])
        for p in payloads
        if p["type"] == "response.output_item.added"
    ]
    done = [
        (p["output_index"], p["item"]) for p in payloads if p["type"] == "response.output_item.done"
    ]
    assert added == [(index, item["id"]) for index, item in done]
    assert [item for _, item in done] == payloads[-1]["response"]["output"]
    return answer


async def test_responses_full_event_sequence_for_text(scripted: StartScripted) -> None:
    client = await scripted("agent/v1/responses", ())
    events = named_frames(await stream(client, "/v1/responses", {"input": "Hi"}))
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 5
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == text
    assert all(e["logprobs"] == [] for e in events if "delta" in e)
    completed = events[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"][0]["content"][0]["text"] == text
    usage = completed["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_responses_agent_tools_on_invocations_follow_mlflow(scripted: StartScripted) -> None:
    """/invocations keeps MLflow's ResponsesAgent convention: the agent's own tool calls as
    function_call + function_call_output items (what the Databricks AI SDK provider reads)."""
    client = await scripted("agent/v1/responses", AGENT_TOOL)
    answer = await responses_both(client, {"input": QUESTION}, "/invocations")
    kinds = [item["type"] for item in answer["output"]]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    _, call, output, final = answer["output"]
    assert call["name"] == "calculator"
    assert orjson.loads(call["arguments"]) == {"expression": "6*7"}
    assert output["call_id"] == call["call_id"]
    assert output["output"] == "42"
    assert final["content"][0]["text"] == "It is 42."
    assert len({item["id"] for item in answer["output"]}) == 4


@pytest.mark.parametrize("path", ["/v1/responses", "/responses"])
async def test_responses_agent_tools_on_openai_routes_are_mcp_calls(
    scripted: StartScripted, path: str
) -> None:
    """On the OpenAI routes a function_call item is always the client's to run: the agent's
    own calls are mcp_call items, already run, with their output, and their own events."""
    client = await scripted("agent/v1/responses", AGENT_TOOL)
    answer = await responses_both(client, {"input": QUESTION}, path)
    assert [item["type"] for item in answer["output"]] == ["message", "mcp_call", "message"]
    call = answer["output"][1]
    assert (call["name"], call["server_label"], call["status"]) == (
        "calculator",
        "agent-service",
        "completed",
    )
    assert orjson.loads(call["arguments"]) == {"expression": "6*7"}
    assert call["output"] == "42"
    assert answer["output"][2]["content"][0]["text"] == "It is 42."
    events = named_frames(await stream(client, path, {"input": QUESTION}))
    [streamed] = [
        e["item"]
        for e in events
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "mcp_call"
    ]
    about_call = [
        e["type"]
        for e in events
        if streamed["id"] in (e.get("item_id"), (e.get("item") or {}).get("id"))
    ]
    assert [kind for kind in about_call if kind != "response.mcp_call_arguments.delta"] == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]
    assert not any("function_call" in e["type"] for e in events)


async def test_responses_mcp_call_history_is_accepted(scripted: StartScripted) -> None:
    """A client sends our mcp_call item back with the next turn: the model sees the call and
    its result, as it did then."""
    client = await scripted("agent/v1/responses", AGENT_TOOL)
    first = await responses_both(client, {"input": QUESTION}, "/v1/responses")
    history = [{"role": "user", "content": QUESTION}, *first["output"]]
    follow_up = {"input": [*history, {"role": "user", "content": "Thanks"}], "store": False}
    response = await client.post("/v1/responses", json=follow_up)
    assert response.status == 200, await response.text()
    check_response(await response.json())


async def test_responses_client_tool_round_trip(scripted: StartScripted) -> None:
    client = await scripted("agent/v1/responses", CLIENT_TOOL)
    user = {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}
    body = {"input": [user], "tools": [RESPONSES_WEATHER_TOOL]}
    answer = await responses_both(client, body)
    [call] = answer["output"]
    assert call["type"] == "function_call"
    assert call["name"] == "get_weather"
    assert answer["tools"][0]["name"] == "get_weather"

    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    follow_up = {"input": [user, call, result], "tools": [RESPONSES_WEATHER_TOOL]}
    final = await responses_both(client, follow_up)
    assert [item["type"] for item in final["output"]] == ["message"]
    assert final["output"][0]["content"][0]["text"] == "It is sunny in Paris."


async def test_responses_echo_request_fields(scripted: StartScripted) -> None:
    client = await scripted("agent/v1/responses", (), STATE_STORE="off")
    body = {
        "input": "Hi",
        "instructions": "Be brief.",
        "metadata": {"team": "a"},
        "temperature": 0.3,
        "top_p": 0.5,
        "model": "my-agent",
        "custom_inputs": {"x": 1},
        "context": {"conversation_id": "c"},
    }
    answer = await responses_both(client, body)
    assert answer["instructions"] == "Be brief."
    assert answer["metadata"] == {"team": "a"}
    assert (answer["temperature"], answer["top_p"], answer["model"]) == (0.3, 0.5, "my-agent")
    assert answer["custom_outputs"] == {"x": 1}
    assert answer["id"].startswith("resp_")


async def test_responses_max_output_tokens_is_incomplete(scripted: StartScripted) -> None:
    client = await scripted("agent/v1/responses", ())
    body = {"input": "Hi", "max_output_tokens": 3}
    answer = await (await client.post("/v1/responses", json=body)).json()
    check_response(answer)
    assert answer["status"] == "incomplete"
    assert answer["incomplete_details"] == {"reason": "max_output_tokens"}
    events = named_frames(await stream(client, "/v1/responses", body))
    assert events[-1]["type"] == "response.incomplete"
    assert normalise(events[-1]["response"]) == normalise(answer)


async def test_responses_paths_always_speak_responses(scripted: StartScripted) -> None:
    client = await scripted("agent/v1/chat", ())
    answer = await (await client.post("/v1/responses", json={"input": "Hi"})).json()
    assert answer["object"] == "response"
    chat = await (
        await client.post("/invocations", json={"messages": [{"role": "user", "content": "Hi"}]})
    ).json()
    assert chat["object"] == "chat.completion"


# --- Schema failures, per task ---------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "body", "param"),
    [
        (
            "agent/v2/chat",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            "$.messages[0].content",
        ),
        (
            "agent/v2/chat",
            {"messages": [{"role": "tool", "content": "4", "tool_call_id": "c"}]},
            "$.messages[0]",
        ),
        ("agent/v2/chat", {"messages": [{"role": "user"}]}, "$.messages[0]"),
        ("agent/v1/responses", {"input": 3}, "$.input"),
        ("agent/v1/responses", {}, "$"),
        (
            "agent/v1/responses",
            {"input": [{"type": "function_call_output", "output": "x"}]},
            "$.input[0]",
        ),
        ("agent/v1/responses", {"input": "x", "max_output_tokens": 0}, "$.max_output_tokens"),
        (
            "agent/v1/responses",
            {"input": "x", "previous_response_id": "resp_1"},
            "$.previous_response_id",
        ),
        (
            "agent/v1/responses",
            {"input": [{"type": "item_reference", "id": "msg_1"}]},
            "$.input[0]",
        ),
        (
            "agent/v1/responses",
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "6"}]},
            "$.input[0].arguments",
        ),
    ],
    ids=[
        "v2-content-list",
        "v2-tool-without-name",
        "v2-no-content",
        "resp-input-number",
        "resp-no-input",
        "resp-output-without-call-id",
        "resp-max-tokens",
        "resp-previous-id",
        "resp-item-reference",
        "resp-call-arguments-not-an-object",
    ],
)
async def test_bad_requests_per_task_name_the_field(
    scripted: StartScripted, task: str, body: dict[str, Any], param: str
) -> None:
    client = await scripted(task, ())
    response = await client.post("/invocations", json=body)
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
