"""The OpenAI Python SDK, unchanged, against a live server: `base_url=.../v1`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from openai.types.responses import FunctionToolParam, ResponseInputParam
from pytest_aiohttp import AiohttpServer

from agent_service.agents.default_graph import build_graph
from agent_service.agents.tools import select_tools
from agent_service.app import create_app
from agent_service.models.offline import (
    OFFLINE_NOTICE,
    OfflineChatModel,
    ScriptedToolCall,
    ScriptedTurn,
)
from tests.conftest import settings_for

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi SDK"}]


@pytest.fixture
async def server(aiohttp_server: AiohttpServer) -> TestServer:
    return await aiohttp_server(await create_app(settings_for()))


@pytest.fixture
async def sdk(server: TestServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0
    )
    yield client
    await client.close()


async def test_chat_completions_create(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(model="agent", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "stop"
    content = completion.choices[0].message.content
    assert content is not None
    assert content.startswith(OFFLINE_NOTICE)
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


async def test_chat_completions_stream(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="agent",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "".join(text).startswith(OFFLINE_NOTICE)
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens == len(text) - 2


async def test_sdk_raises_with_our_error_envelope(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.chat.completions.create(model="agent", messages=[])
    assert raised.value.status_code == 400
    assert raised.value.param == "$.messages"
    assert raised.value.code == "invalid_value"
    # The SDK reads our X-Request-Id header; the message carries the same id.
    assert raised.value.request_id
    assert raised.value.request_id in raised.value.message


WEATHER: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CLIENT_TOOL_SCRIPT = (
    ScriptedTurn(tool_calls=(ScriptedToolCall("get_weather", {"city": "Paris"}),)),
    ScriptedTurn(text="Sunny in Paris."),
)
AGENT_TOOL_SCRIPT = (
    ScriptedTurn(tool_calls=(ScriptedToolCall("calculator", {"expression": "2**10"}),)),
    ScriptedTurn(text="It is 1024."),
)


async def sdk_for(
    aiohttp_server: AiohttpServer, script: tuple[ScriptedTurn, ...], task: str = "agent/v1/chat"
) -> openai.AsyncOpenAI:
    graph = build_graph(OfflineChatModel(script=script), select_tools(("calculator",)))
    app = await create_app(settings_for({"AGENT_TASK": task}), agent=graph)
    server = await aiohttp_server(app)
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k", max_retries=0)


async def test_chat_completions_with_client_tools(aiohttp_server: AiohttpServer) -> None:
    sdk = await sdk_for(aiohttp_server, CLIENT_TOOL_SCRIPT)
    async with sdk:
        first = await sdk.chat.completions.create(model="agent", messages=USER, tools=WEATHER)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls is not None
        [call] = choice.message.tool_calls
        assert call.type == "function"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        history: list[ChatCompletionMessageParam] = [
            *USER,
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        final = await sdk.chat.completions.create(model="agent", messages=history, tools=WEATHER)
        assert final.choices[0].message.content == "Sunny in Paris."


async def test_chat_completions_stream_with_client_tools(aiohttp_server: AiohttpServer) -> None:
    sdk = await sdk_for(aiohttp_server, CLIENT_TOOL_SCRIPT)
    async with (
        sdk,
        sdk.chat.completions.stream(model="agent", messages=USER, tools=WEATHER) as stream,
    ):
        async for _ in stream:
            pass
        completion = await stream.get_final_completion()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Paris"}


async def test_responses_create(aiohttp_server: AiohttpServer) -> None:
    sdk = await sdk_for(aiohttp_server, AGENT_TOOL_SCRIPT)
    async with sdk:
        response = await sdk.responses.create(model="agent", input="What is 2**10?")
    assert response.status == "completed"
    # The agent's own call, already run by the server: an mcp_call item, never a
    # function_call (which the SDK's users would take as theirs to run).
    assert [item.type for item in response.output] == ["mcp_call", "message"]
    assert response.output_text == "It is 1024."
    assert response.usage is not None
    assert response.usage.total_tokens > 0


async def test_responses_create_stream(aiohttp_server: AiohttpServer) -> None:
    sdk = await sdk_for(aiohttp_server, ())
    async with sdk:
        events = [
            event
            async for event in await sdk.responses.create(model="agent", input="Hi", stream=True)
        ]
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith(OFFLINE_NOTICE)


async def test_responses_stream_helper(aiohttp_server: AiohttpServer) -> None:
    sdk = await sdk_for(aiohttp_server, AGENT_TOOL_SCRIPT)
    async with sdk, sdk.responses.stream(model="agent", input="What is 2**10?") as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]
        final = await stream.get_final_response()
    assert "".join(deltas) == "It is 1024."
    assert final.output_text == "It is 1024."
    call = final.output[0]
    assert call.type == "mcp_call"
    assert call.name == "calculator"
    assert call.output == "1024"


async def test_responses_client_tool_call_with_the_sdk(aiohttp_server: AiohttpServer) -> None:
    sdk = await sdk_for(aiohttp_server, CLIENT_TOOL_SCRIPT)
    tool: FunctionToolParam = {
        "type": "function",
        "name": "get_weather",
        "strict": False,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    async with sdk:
        first = await sdk.responses.create(model="agent", input="Weather?", tools=[tool])
        [call] = first.output
        assert call.type == "function_call"
        follow_up: ResponseInputParam = [
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ]
        final = await sdk.responses.create(model="agent", input=follow_up, tools=[tool])
    assert final.output_text == "Sunny in Paris."
