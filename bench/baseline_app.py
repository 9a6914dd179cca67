"""The baseline: MLflow's `AgentServer("ResponsesAgent")` (FastAPI + uvicorn) serving our graph.

The agent is wrapped the way the Databricks LangGraph agent template wraps its agent: an
`@stream()` async generator runs `graph.astream(stream_mode=["updates", "messages"])` and turns
what it yields into `ResponsesAgentStreamEvent`s with MLflow's helpers (a text delta per token
chunk, `output_item.done` items for each node's complete messages); `@invoke()` collects the
stream's `response.output_item.done` items into a `ResponsesAgentResponse`. It is started the
way the template starts it (`AgentServer.run`, i.e. `uvicorn.run(..., workers=N)`).

Where we differ from the template, it is in the baseline's favour: the graph is compiled once
per process, not per request, and the chat-UI proxy middleware is off.

Run: `python -c "from bench.baseline_app import main; main()" --port 8001 --workers 1`
(not `python -m`: the module must be imported under its own name exactly once, because
MLflow's `@invoke`/`@stream` decorators refuse a second registration).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import mlflow
from langchain_core.messages import AIMessageChunk, AnyMessage, ToolMessage
from mlflow.genai.agent_server import (
    AgentServer,
    invoke,
    setup_mlflow_git_based_version_tracking,
    stream,
)
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
    create_text_delta,
    output_to_responses_items_stream,
    to_chat_completions_input,
)

from agent_service.agents.default_graph import AgentState, build_graph
from bench.answer import Answer

log = logging.getLogger(__name__)

# BENCH_TRACING=true: what the template does (autolog into the configured tracking store).
# Otherwise tracing is switched off, to compare with our AGENT_TRACING=false.
TRACING = os.environ.get("BENCH_TRACING", "false") == "true"

if TRACING:
    mlflow.langchain.autolog()
    logging.getLogger("mlflow.utils.autologging_utils").setLevel(logging.ERROR)
else:
    mlflow.tracing.disable()

GRAPH = build_graph(Answer.from_env().model())


@invoke()
async def invoke_handler(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
    outputs = [
        event.item  # type: ignore[attr-defined]  # an extra field of the stream event
        async for event in stream_handler(request)
        if event.type == "response.output_item.done"
    ]
    return ResponsesAgentResponse(output=outputs)


@stream()
async def stream_handler(
    request: ResponsesAgentRequest,
) -> AsyncGenerator[ResponsesAgentStreamEvent, None]:
    messages = to_chat_completions_input([i.model_dump() for i in request.input])
    # LangGraph turns the message dicts into LangChain messages.
    state = AgentState(messages=cast(list[AnyMessage], messages))
    async for event in _responses_events(
        GRAPH.astream(input=state, stream_mode=["updates", "messages"])
    ):
        yield event


async def _responses_events(
    parts: AsyncIterator[Any],
) -> AsyncGenerator[ResponsesAgentStreamEvent, None]:
    """LangGraph (mode, data) parts → Responses stream events, as the template converts them."""
    async for mode, data in parts:
        if mode == "updates":
            for node_data in data.values():
                if node_data.get("messages"):
                    for message in node_data["messages"]:
                        if isinstance(message, ToolMessage) and not isinstance(
                            message.content, str
                        ):
                            message.content = json.dumps(message.content)
                    for item in output_to_responses_items_stream(node_data["messages"]):
                        yield item
        elif mode == "messages":
            chunk = data[0]
            if isinstance(chunk, AIMessageChunk) and (content := chunk.content):
                yield ResponsesAgentStreamEvent(
                    **create_text_delta(delta=content, item_id=chunk.id)  # type: ignore[arg-type]
                )


agent_server = AgentServer("ResponsesAgent")
# A module-level app so that uvicorn can import it in each worker process.
app = agent_server.app

if TRACING:
    # The template names the running version as a LoggedModel at import, like ours does.
    setup_mlflow_git_based_version_tracking()


def main() -> None:
    # AgentServer.run parses --port/--workers/--reload from sys.argv and calls uvicorn.run.
    agent_server.run(app_import_string="bench.baseline_app:app", host="127.0.0.1")
