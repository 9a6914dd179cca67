"""After the first byte of a stream, nothing but the protocol's terminal event may end it:
never a second HTTP status line inside the open body, never a clean end that looks complete.

The agent here answers, then returns `custom_outputs` that cannot be encoded as JSON (a set;
nesting far past any limit) — an agent author's bug, found only once the stream is flowing.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph

from agent_service.agents.default_graph import AgentGraph, AgentState
from tests.conftest import ServiceFactory
from tests.raw_http import exchange, post
from tests.sse_decoder import decode


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def unencodable_outputs(value: object) -> AgentGraph:
    """A graph that answers, then hands back custom outputs JSON cannot carry."""

    def answer(state: AgentState) -> dict[str, Any]:
        return {"messages": [AIMessage("Here is the answer.")], "custom_outputs": {"x": value}}

    graph = StateGraph(AgentState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile(name="unencodable")


BROKEN_OUTPUTS = [
    pytest.param({"a", "set"}, id="a-set"),
    pytest.param(_deep(2000), id="nested-2000-deep"),
]


@pytest.mark.parametrize("value", BROKEN_OUTPUTS)
async def test_a_responses_stream_ends_with_its_terminal_events_only(
    make_service: ServiceFactory, value: object
) -> None:
    client = await make_service(
        {"AGENT_TASK": "agent/v1/responses"}, agent=unencodable_outputs(value)
    )
    body = orjson.dumps({"input": "Hi", "stream": True})
    response = await exchange(client.server, post("/v1/responses", body))
    assert response.status_lines == 1, response.raw[-600:]
    assert response.status == 200
    assert response.complete, "the chunked body ends with its last chunk"
    events = decode([response.body])
    assert [e.event for e in events][-2:] == ["error", "response.failed"]
    assert events[-2].json()["code"] == "internal_error"
    failed = events[-1].json()["response"]
    assert failed["status"] == "failed"
    assert failed["output"][0]["content"][0]["text"] == "Here is the answer."


@pytest.mark.parametrize("value", BROKEN_OUTPUTS)
@pytest.mark.parametrize("path", ["/invocations", "/v1/chat/completions"])
async def test_a_chat_stream_ends_with_its_terminal_event_only(
    make_service: ServiceFactory, value: object, path: str
) -> None:
    client = await make_service(agent=unencodable_outputs(value))
    body = orjson.dumps({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    response = await exchange(client.server, post(path, body))
    assert response.status_lines == 1, response.raw[-600:]
    assert response.complete
    events = decode([response.body])
    assert events[-1].data == "[DONE]"
    assert events[-2].json()["error"]["code"] == "internal_error"
    assert events[1].json()["choices"][0]["delta"]["content"] == "Here is the answer."
