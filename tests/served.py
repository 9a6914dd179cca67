"""One question through the three protocols, streamed and not, as a client would ask it.

For tests of whatever is served (a graph, @invoke/@stream functions, an MLflow agent class):
the service runs with `AGENT_TASK=agent/v2/chat`, so `/invocations` speaks ChatAgent while
`/v1/chat/completions` and `/v1/responses` speak their own protocols. Every body and every
stream unit is checked against the clients' own types and our schemas, and each streamed
answer, aggregated the way clients aggregate it, must equal the JSON answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

# What /invocations speaks in these tests: the protocol without an OpenAI route of its own.
INVOCATIONS_TASK = {"AGENT_TASK": "agent/v2/chat"}


@dataclass(frozen=True)
class ThreeAnswers:
    chat: dict[str, Any]
    chat_agent: dict[str, Any]
    responses: dict[str, Any]
    # The Responses stream's event types, in order.
    response_events: list[str]

    @property
    def texts(self) -> tuple[str, str, str]:
        """The final assistant text of each answer."""
        return (
            self.chat["choices"][0]["message"]["content"] or "",
            self.chat_agent["messages"][-1]["content"] or "",
            _last_output_text(self.responses),
        )


async def ask_three_ways(client: Client, question: str) -> ThreeAnswers:
    messages = [{"role": "user", "content": question}]
    chat = await chat_both(client, {"messages": messages}, "/v1/chat/completions")
    chat_agent = await chat_agent_both(client, {"messages": messages})
    responses, events = await responses_both(client, {"input": question}, "/v1/responses")
    return ThreeAnswers(chat, chat_agent, responses, events)


async def chat_both(client: Client, body: dict[str, Any], path: str) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    check_chat_completion(answer)
    streamed = {**body, "stream_options": {"include_usage": True}}
    chunks = data_frames(await stream(client, path, streamed))
    for chunk in chunks:
        check_chat_chunk(chunk)
    aggregated = aggregate_chat_chunks(chunks)
    if "usage" not in answer:
        # An agent that counts no tokens: the usage chunk the client asked for says zero.
        assert aggregated.pop("usage") == {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
        }
    assert normalise(aggregated) == normalise(answer)
    return answer


async def chat_agent_both(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/invocations", json=body)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    check_chat_agent_response(answer)
    chunks = data_frames(await stream(client, "/invocations", body))
    for chunk in chunks:
        check_chat_agent_chunk(chunk)
    assert normalise(aggregate_chat_agent_chunks(chunks)) == normalise(answer)
    return answer


async def responses_both(
    client: Client, body: dict[str, Any], path: str
) -> tuple[dict[str, Any], list[str]]:
    response = await client.post(path, json=body)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    check_response(answer)
    events = await stream(client, path, body)
    payloads = data_frames(events) if path == "/invocations" else named_frames(events)
    for payload in payloads:
        check_response_event(payload)
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert payloads[-1]["type"] == "response.completed"
    assert normalise(payloads[-1]["response"]) == normalise(answer)
    return answer, [p["type"] for p in payloads]


def _last_output_text(response: dict[str, Any]) -> str:
    messages = [item for item in response["output"] if item["type"] == "message"]
    return "".join(part.get("text", "") for part in messages[-1]["content"]) if messages else ""
