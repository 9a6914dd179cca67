"""Every wire protocol the service speaks, declared once: its task name, schemas, routes and
stream framing. Settings, routing and the OpenAPI document read this registry.

Light on purpose (no LangChain, no aiohttp): settings import it to validate `AGENT_TASK`.
The protocol's adapter (request → run, events → frames and body) is loaded by name when the
app is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from agent_service.protocols.base import Task

TaskName = Literal["agent/v1/chat", "agent/v2/chat", "agent/v1/responses"]


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    task: TaskName
    # What people call it, in messages to them.
    title: str
    # The top-level field every request of this protocol carries: how a body sent to the
    # wrong route is recognised, and the 400 it gets names the protocol the route speaks.
    input_field: str
    # Bundled JSON Schemas (schemas/<name>.json): what requests must satisfy, and what our
    # answers and stream units look like (checked by the tests, never on the hot path).
    request_schema: str
    response_schema: str
    stream_schema: str
    # The OpenAI-compatible routes that always speak this protocol, whatever AGENT_TASK says.
    openai_paths: tuple[str, ...]
    # How those routes frame a stream: OpenAI's Responses names each event (`event:` lines)
    # and sends no [DONE]; Chat Completions sends data-only frames ending in [DONE].
    # /invocations always uses data-only frames and [DONE] (the Databricks convention).
    named_events: bool
    # "module:Class" of the adapter implementing `protocols.base.Task`.
    adapter: str


PROTOCOLS: dict[TaskName, ProtocolSpec] = {
    "agent/v1/chat": ProtocolSpec(
        task="agent/v1/chat",
        title="OpenAI Chat Completions",
        input_field="messages",
        request_schema="agent-v1-chat.request",
        response_schema="agent-v1-chat.response",
        stream_schema="agent-v1-chat.chunk",
        openai_paths=("/v1/chat/completions",),
        named_events=False,
        adapter="agent_service.protocols.chat_completions:ChatCompletionsTask",
    ),
    "agent/v2/chat": ProtocolSpec(
        task="agent/v2/chat",
        title="MLflow ChatAgent",
        input_field="messages",
        request_schema="agent-v2-chat.request",
        response_schema="agent-v2-chat.response",
        stream_schema="agent-v2-chat.chunk",
        openai_paths=(),
        named_events=False,
        adapter="agent_service.protocols.chat_agent:ChatAgentTask",
    ),
    "agent/v1/responses": ProtocolSpec(
        task="agent/v1/responses",
        title="OpenAI Responses",
        input_field="input",
        request_schema="agent-v1-responses.request",
        response_schema="agent-v1-responses.response",
        stream_schema="agent-v1-responses.event",
        openai_paths=("/v1/responses", "/responses"),
        named_events=True,
        adapter="agent_service.protocols.responses:ResponsesTask",
    ),
}
TASK_NAMES: tuple[TaskName, ...] = tuple(PROTOCOLS)


def load_task(name: TaskName) -> Task:
    """The adapter of protocol `name`, imported on first use."""
    module_name, _, class_name = PROTOCOLS[name].adapter.partition(":")
    task: Task = getattr(importlib.import_module(module_name), class_name)()
    return task
