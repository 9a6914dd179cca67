"""A reasoning model's reasoning reaches Responses clients: OpenAI-compatible servers'
`reasoning_content` and Databricks' content parts of type "reasoning" become a reasoning output
item with `response.reasoning_summary_*` events, streamed and not; reasoning items come back
as input without an id; `reasoning.effort` reaches the model."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.wire import Client, check_response, check_response_event, named_frames, stream

FakeEndpoint = tuple[FakeOpenAI, TestServer]
THOUGHTS = ("The user greets me.", " I greet back.")
STYLES = ["reasoning_content", "databricks"]


async def reasoning_service(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, style: str
) -> Client:
    fake, server = fake_openai
    fake.behaviour = Behaviour(reasoning=THOUGHTS, reasoning_style=style)
    return await make_service({**openai_env(server), "AGENT_TASK": "agent/v1/responses"})


@pytest.mark.parametrize("style", STYLES)
async def test_streamed_reasoning_is_a_reasoning_item(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, style: str
) -> None:
    client = await reasoning_service(make_service, fake_openai, style)
    events = named_frames(await stream(client, "/v1/responses", {"input": "Hi"}))
    for event in events:
        check_response_event(event)
    kinds = [event["type"] for event in events]
    deltas = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == "".join(THOUGHTS)
    first_text = kinds.index("response.output_text.delta")
    assert kinds.index("response.reasoning_summary_text.done") < first_text
    [done] = [e for e in events if e["type"] == "response.reasoning_summary_text.done"]
    assert done["text"] == "".join(THOUGHTS)
    final = events[-1]["response"]
    reasoning, message = final["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["summary"] == [{"type": "summary_text", "text": "".join(THOUGHTS)}]
    assert message["content"][0]["text"] == "Hello from the fake model."


@pytest.mark.parametrize("style", STYLES)
async def test_json_answer_has_the_reasoning_item(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, style: str
) -> None:
    client = await reasoning_service(make_service, fake_openai, style)
    response = await client.post("/v1/responses", json={"input": "Hi"})
    answer: dict[str, Any] = await response.json()
    check_response(answer)
    assert [item["type"] for item in answer["output"]] == ["reasoning", "message"]
    assert answer["output"][0]["summary"][0]["text"] == "".join(THOUGHTS)
    assert answer["output"][1]["content"][0]["text"] == "Hello from the fake model."


async def test_the_openai_sdk_reads_reasoning_and_sends_it_back(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    """The SDK's own types read the item, and the next turn may send it back without its
    id (as the specification allows); reasoning.effort reaches the model."""
    client = await reasoning_service(make_service, fake_openai, "reasoning_content")
    sdk = AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    async with sdk:
        first = await sdk.responses.create(model="agent", input="Hi", reasoning={"effort": "high"})
        [reasoning] = [item for item in first.output if item.type == "reasoning"]
        assert reasoning.summary[0].text == "".join(THOUGHTS)
        sent_back = reasoning.model_dump(exclude={"id"}, exclude_none=True)
        second = await sdk.responses.create(
            model="agent",
            input=[
                {"role": "user", "content": "Hi"},
                sent_back,  # type: ignore[list-item]
                {"role": "user", "content": "And now?"},
            ],
            store=False,
        )
    assert second.status == "completed"
    fake = fake_openai[0]
    assert fake.requests[0].body["reasoning_effort"] == "high"
