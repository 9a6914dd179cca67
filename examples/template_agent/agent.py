"""Shaped like the Databricks `agent-langgraph` template's `agent_server/agent.py`, with one
import changed: `mlflow.genai.agent_server` → `agent_service.agent_server`.

A LangGraph agent behind MLflow's authoring API: `@stream()` turns the graph's updates and
token chunks into MLflow's Responses stream events (`create_text_delta`, and
`output_item.done` items from `output_to_responses_items_stream`), `@invoke()` collects the
finished items of that stream. MLflow's types need numpy (`uv add numpy`), as in the
template. The template's MCP tools and ChatDatabricks model are replaced by a local tool
and the offline model, so that it runs anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import mlflow
from langchain_core.messages import AIMessageChunk
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
    create_text_delta,
    output_to_responses_items_stream,
    to_chat_completions_input,
)

from agent_service.agent_server import get_request_headers, invoke, stream
from agent_service.agents.default_graph import AgentGraph, build_graph
from agent_service.agents.tools import calculator
from agent_service.models.offline import OfflineChatModel


def init_agent() -> AgentGraph:
    # The template: create_agent(tools=<MCP tools>, model=ChatDatabricks(endpoint=...)).
    return build_graph(OfflineChatModel(), [calculator])


@invoke()
async def invoke_handler(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
    outputs = [
        event.item
        async for event in stream_handler(request)
        if event.type == "response.output_item.done"
    ]
    return ResponsesAgentResponse(output=outputs)


@stream()
async def stream_handler(
    request: ResponsesAgentRequest,
) -> AsyncGenerator[ResponsesAgentStreamEvent, None]:
    if request.context and (session_id := request.context.conversation_id):
        mlflow.update_current_trace(metadata={"mlflow.trace.session": session_id})
    # On Databricks Apps with user authorization, the caller's own token (never log it).
    acting_for_a_user = "x-forwarded-access-token" in get_request_headers()
    with mlflow.start_span("prepare") as span:
        span.set_attributes({"acting_for_a_user": acting_for_a_user})
        agent = init_agent()
        messages = {"messages": to_chat_completions_input([i.model_dump() for i in request.input])}
    async for event in process_agent_astream_events(
        agent.astream(input=messages, stream_mode=["updates", "messages"])
    ):
        yield event


async def process_agent_astream_events(
    async_stream: AsyncIterator[Any],
) -> AsyncGenerator[ResponsesAgentStreamEvent, None]:
    """The template's helper (agent_server/utils.py): graph updates → finished items, token
    chunks → text deltas."""
    async for event in async_stream:
        if event[0] == "updates":
            for node_data in event[1].values():
                if node_data and node_data.get("messages"):
                    for item in output_to_responses_items_stream(node_data["messages"]):
                        yield item
        elif event[0] == "messages":
            chunk = event[1][0]
            if isinstance(chunk, AIMessageChunk) and (content := chunk.content):
                yield ResponsesAgentStreamEvent(
                    **create_text_delta(delta=str(content), item_id=str(chunk.id))
                )
