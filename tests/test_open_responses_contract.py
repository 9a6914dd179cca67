"""Every Responses answer we send — JSON body and each stream event, on the OpenAI routes and
on /invocations — satisfies the Open Responses output contract written from the specification
(tests/contracts/open-responses.output.json), whatever the run: plain text, agent tools,
client tools, a cut-short answer, a failure mid-stream."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent_service.agents.default_graph import build_graph
from agent_service.agents.tools import select_tools
from agent_service.models.offline import OfflineChatModel, ScriptedToolCall, ScriptedTurn
from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.open_responses import check_open_responses_body, check_open_responses_event
from tests.wire import Client, check_response, check_response_event, data_frames, named_frames
from tests.wire import stream as stream_events

AGENT_TOOL = (
    ScriptedTurn(tool_calls=(ScriptedToolCall("calculator", {"expression": "6*7"}),)),
    ScriptedTurn(text="It is 42."),
)
CLIENT_TOOL = (ScriptedTurn(tool_calls=(ScriptedToolCall("get_weather", {"city": "Paris"}),)),)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ROUTES = ["/v1/responses", "/responses", "/invocations"]


async def scripted(make_service: ServiceFactory, script: tuple[ScriptedTurn, ...]) -> Client:
    graph = build_graph(OfflineChatModel(script=script), select_tools(("calculator",)))
    return await make_service({"AGENT_TASK": "agent/v1/responses"}, graph=graph)


async def both(
    client: Client, path: str, body: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The JSON answer and the stream's events, every one checked against the contract."""
    response = await client.post(path, json=body)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    check_response(answer)
    events = await stream_events(client, path, body)
    payloads = data_frames(events) if path == "/invocations" else named_frames(events)
    for payload in payloads:
        check_response_event(payload)
    return answer, payloads


@pytest.mark.parametrize("path", ROUTES)
async def test_plain_answer(make_service: ServiceFactory, path: str) -> None:
    client = await scripted(make_service, ())
    answer, events = await both(client, path, {"input": "Hi"})
    assert answer["status"] == "completed"
    assert isinstance(answer["completed_at"], int)
    assert answer["completed_at"] >= answer["created_at"]
    created = events[0]["response"]
    assert (created["status"], created["completed_at"], created["usage"]) == (
        "in_progress",
        None,
        None,
    ), "before any output there is no usage and no completion time, both null, not absent"


@pytest.mark.parametrize("path", ROUTES)
async def test_agent_and_client_tools(make_service: ServiceFactory, path: str) -> None:
    client = await scripted(make_service, AGENT_TOOL)
    await both(client, path, {"input": "What is 6*7?"})
    client = await scripted(make_service, CLIENT_TOOL)
    answer, _ = await both(client, path, {"input": "Weather?", "tools": [WEATHER_TOOL]})
    assert [item["type"] for item in answer["output"]] == ["function_call"]


async def test_incomplete(make_service: ServiceFactory) -> None:
    client = await scripted(make_service, ())
    answer, events = await both(client, "/v1/responses", {"input": "Hi", "max_output_tokens": 3})
    assert answer["status"] == "incomplete"
    assert answer["completed_at"] is None
    assert events[-1]["type"] == "response.incomplete"


async def test_request_values_are_echoed(make_service: ServiceFactory) -> None:
    client = await scripted(make_service, ())
    values = {
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "top_logprobs": 2,
        "reasoning": {"effort": "low", "summary": "auto"},
        "max_tool_calls": 3,
        "store": False,
        "service_tier": "flex",
        "safety_identifier": "user-7",
        "prompt_cache_key": "cache-1",
    }
    answer, events = await both(client, "/v1/responses", {"input": "Hi", **values})
    for response in (answer, events[0]["response"], events[-1]["response"]):
        assert {key: response[key] for key in values} == values


async def test_defaults_without_request_values(make_service: ServiceFactory) -> None:
    client = await scripted(make_service, ())
    answer, _ = await both(client, "/v1/responses", {"input": "Hi"})
    assert {
        key: answer[key]
        for key in (
            "presence_penalty",
            "frequency_penalty",
            "top_logprobs",
            "reasoning",
            "max_tool_calls",
            "store",
            "background",
            "service_tier",
            "safety_identifier",
            "prompt_cache_key",
        )
    } == {
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": 0,
        "reasoning": None,
        "max_tool_calls": None,
        "store": True,
        "background": False,
        "service_tier": "default",
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


@pytest.mark.parametrize("path", ["/v1/responses", "/invocations"])
async def test_failure_mid_stream(
    make_service: ServiceFactory, fake_openai: tuple[FakeOpenAI, Any], path: str
) -> None:
    fake, server = fake_openai
    fake.behaviour = Behaviour(drop_after_chunks=3)
    client = await make_service({**openai_env(server), "AGENT_TASK": "agent/v1/responses"})
    payloads = await stream_events(client, path, {"input": "Hi"})
    events = data_frames(payloads) if path == "/invocations" else named_frames(payloads)
    for event in events:
        check_response_event(event)
    error, failed = events[-2:]
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"
    # The flat fields the OpenAI SDK reads, and the object the specification nests.
    assert error["type"] == "error"
    assert error["code"] == "upstream_error"
    assert error["error"] == {
        "type": "server_error",
        "code": "upstream_error",
        "message": error["message"],
        "param": None,
    }


def test_the_contract_refuses_what_strict_clients_refuse() -> None:
    """The contract is not vacuous: the shapes strict clients rejected are rejected here."""
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "completed_at": 2,
        "status": "completed",
        "incomplete_details": None,
        "model": "m",
        "previous_response_id": None,
        "instructions": None,
        "output": [],
        "error": None,
        "tools": [],
        "tool_choice": "auto",
        "truncation": "disabled",
        "parallel_tool_calls": True,
        "text": {"format": {"type": "text"}},
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": 0,
        "temperature": 1.0,
        "reasoning": None,
        "user": None,
        "usage": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "store": True,
        "background": False,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }
    check_open_responses_body(body)
    for key in ("usage", "completed_at", "reasoning", "service_tier", "prompt_cache_key"):
        broken = {k: v for k, v in body.items() if k != key}
        with pytest.raises(AssertionError, match=key):
            check_open_responses_body(broken)
    stray = copy.deepcopy(body)
    stray["output"] = [{"type": "function_call_output", "id": "x", "call_id": "c"}]
    with pytest.raises(AssertionError):
        check_open_responses_body(stray)
    with pytest.raises(AssertionError, match="error"):
        check_open_responses_event(
            {"type": "error", "sequence_number": 3, "code": "x", "message": "m", "param": None}
        )
    with pytest.raises(AssertionError):
        check_open_responses_event({"type": "response.made_up", "sequence_number": 0})
