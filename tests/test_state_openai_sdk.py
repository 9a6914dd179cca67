"""The OpenAI Python SDK, unchanged, holding stored conversations with a live server: store
(the default), previous_response_id with client tools, retrieve, input items, delete, and
the Conversations API. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.responses import FunctionToolParam
from pytest_aiohttp import AiohttpServer

from tests.conftest import sdk_on_store
from tests.fakes.openai_server import FakeOpenAI

WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "strict": False,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def sdk(
    aiohttp_server: AiohttpServer, fake_openai: tuple[FakeOpenAI, TestServer], state_url: str
) -> AsyncIterator[openai.AsyncOpenAI]:
    # The agent has a tool of its own too: a stored turn may run tools inside it.
    async with sdk_on_store(
        aiohttp_server, fake_openai[1], state_url, AGENT_TOOLS="calculator"
    ) as client:
        yield client


def roles(fake: FakeOpenAI) -> list[str]:
    return [message["role"] for message in fake.requests[-1].body["messages"]]


async def test_multi_turn_with_client_tools_by_previous_response_id(
    sdk: openai.AsyncOpenAI, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    fake, _ = fake_openai
    fake.behaviour.tool_calls = (("get_weather", '{"city": "Paris"}'),)
    fake.behaviour.tokens = ()
    first = await sdk.responses.create(model="agent", input="Weather in Paris?", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call"
    assert first.model_extra is not None
    assert first.model_extra["store"] is True

    fake.behaviour.tool_calls = ()
    fake.behaviour.tokens = ("Sunny", " in", " Paris.")
    second = await sdk.responses.create(
        model="agent",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Sunny in Paris."
    assert second.previous_response_id == first.id
    assert roles(fake) == ["user", "assistant", "tool"]

    fake.behaviour.tokens = ("You", " are", " welcome.")
    async with sdk.responses.stream(
        model="agent", previous_response_id=second.id, input="Thanks!"
    ) as stream:
        third = await stream.get_final_response()
    assert third.output_text == "You are welcome."
    assert roles(fake) == ["user", "assistant", "tool", "assistant", "user"]

    retrieved = await sdk.responses.retrieve(third.id)
    assert (retrieved.id, retrieved.status, retrieved.output_text) == (
        third.id,
        "completed",
        "You are welcome.",
    )
    assert [item.model_dump().get("id") for item in retrieved.output] == [
        item.model_dump().get("id") for item in third.output
    ]
    inputs = [item async for item in sdk.responses.input_items.list(second.id)]
    assert [item.type for item in inputs] == ["function_call_output"]

    await sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(first.id)
    # The chain goes on: later responses keep what they were built on.
    fake.behaviour.tokens = ("Still", " here.")
    fourth = await sdk.responses.create(model="agent", previous_response_id=third.id, input="Hi")
    assert fourth.output_text == "Still here."
    with pytest.raises(openai.BadRequestError) as gone:
        await sdk.responses.create(model="agent", previous_response_id=first.id, input="Hi")
    assert gone.value.code == "previous_response_not_found"


async def test_the_conversations_api(
    sdk: openai.AsyncOpenAI, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    fake, _ = fake_openai
    conversation = await sdk.conversations.create(
        metadata={"topic": "demo"}, items=[{"type": "message", "role": "user", "content": "Hi!"}]
    )
    assert conversation.object == "conversation"
    await sdk.responses.create(model="agent", conversation=conversation.id, input="More?")
    await sdk.responses.create(model="agent", conversation=conversation.id, input="And?")
    assert roles(fake) == ["user", "user", "assistant", "user"]

    items = [item async for item in sdk.conversations.items.list(conversation.id, limit=2)]
    assert [item.type for item in items] == ["message"] * 5
    assert [getattr(item, "role", None) for item in items] == [
        "assistant",
        "user",
        "assistant",
        "user",
        "user",
    ]
    oldest_id = items[-1].id
    assert oldest_id is not None
    oldest = await sdk.conversations.items.retrieve(oldest_id, conversation_id=conversation.id)
    assert oldest.id == oldest_id

    updated = await sdk.conversations.update(conversation.id, metadata={"topic": "x"})
    assert updated.metadata == {"topic": "x"}
    assert (await sdk.conversations.retrieve(conversation.id)).metadata == {"topic": "x"}
    deleted = await sdk.conversations.delete(conversation.id)
    assert deleted.deleted is True
    assert deleted.object == "conversation.deleted"
    with pytest.raises(openai.NotFoundError):
        await sdk.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model="agent", conversation=conversation.id, input="Hello?")
