"""The OpenAI Python SDK, unchanged, against a live server: `base_url=.../v1`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionMessageParam
from pytest_aiohttp import AiohttpServer

from agent_service.app import create_app
from agent_service.offline_model import OFFLINE_NOTICE
from agent_service.settings import Settings

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi SDK"}]


@pytest.fixture
async def server(aiohttp_server: AiohttpServer) -> TestServer:
    return await aiohttp_server(await create_app(Settings.from_env({})))


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
