"""agent/v2/chat: MLflow ChatAgent (PROTOCOLS.md §3).

Every message the agent produced is returned — its text, its tool calls and the tools'
results — each with an id unique within the response. A stream sends `{"delta": message}`
chunks; chunks of one message share its id and clients aggregate them by id.

Two additions for the Databricks AI SDK provider, which MLflow's ChatAgent types accept (they
ignore unknown top-level fields): the answer and every chunk carry the answer's `id` at the top
level, and an assistant message's `content` is always a string (`""` beside tool calls), never
missing or null — the provider rejects a chunk or body without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_service.events import (
    Event,
    MessageFinished,
    MessageStarted,
    RunEnded,
    RunFailed,
    TextDelta,
    ToolCallFinished,
    ToolResult,
)
from agent_service.protocols.base import Frame, RequestContext, TraceReturn
from agent_service.protocols.common import (
    RunSummary,
    databricks_output,
    error_payload,
    messages_from_openai,
    new_id,
    run_options,
    with_trace_id,
)
from agent_service.protocols.registry import TaskName
from agent_service.run import AgentRun

# ChatAgent message fields that are ours, not the model's.
_NOT_FOR_THE_MODEL = ("id", "attachments")


class ChatAgentTask:
    name: TaskName = "agent/v2/chat"

    def exchange(self, body: Mapping[str, Any], context: RequestContext) -> ChatAgentExchange:
        messages = [
            {key: value for key, value in message.items() if key not in _NOT_FOR_THE_MODEL}
            for message in body["messages"]
        ]
        options = run_options(body, context, model_params={})
        return ChatAgentExchange(
            AgentRun(
                messages_from_openai(messages),
                options,
                context.wire_request(self.name, body),
            ),
            context.trace_return,
            new_id(),
        )


@dataclass(frozen=True, slots=True)
class ChatAgentExchange:
    run: AgentRun
    trace_return: TraceReturn
    # The answer's id, at the top level of the body and of every chunk.
    answer_id: str

    def encoder(self) -> ChatAgentChunkEncoder:
        return ChatAgentChunkEncoder(self.run.options.request_id, self.trace_return, self.answer_id)

    def reducer(self) -> ChatAgentReducer:
        return ChatAgentReducer(self.trace_return, self.answer_id)


@dataclass(slots=True)
class _Summary:
    """The parts of the answer that are not messages: shared by encoder and reducer."""

    run: RunSummary = field(default_factory=RunSummary)
    last_assistant_id: str | None = None

    def note(self, event: Event) -> None:
        if isinstance(event, MessageStarted):
            self.last_assistant_id = event.message_id
        self.run.note(event)

    def fields(self, trace_return: TraceReturn) -> dict[str, Any]:
        fields: dict[str, Any] = {"finish_reason": self.run.last_finish}
        if self.run.usage.reported:
            fields["usage"] = self.run.usage.chat_completions()
        custom_outputs = with_trace_id(self.run.custom_outputs, trace_return)
        if custom_outputs is not None:
            fields["custom_outputs"] = custom_outputs
        fields.update(databricks_output(trace_return))
        return fields


def _tool_call(event: ToolCallFinished) -> dict[str, Any]:
    return {
        "id": event.call_id,
        "type": "function",
        "function": {"name": event.name, "arguments": event.arguments},
    }


def _tool_message(event: ToolResult) -> dict[str, Any]:
    return {
        "role": "tool",
        "content": event.output,
        "name": event.name,
        "tool_call_id": event.call_id,
        "id": event.message_id,
    }


class ChatAgentChunkEncoder:
    """Events → ChatAgentChunk payloads."""

    def __init__(self, request_id: str, trace_return: TraceReturn, answer_id: str) -> None:
        self._request_id = request_id
        self._trace_return = trace_return
        self._answer_id = answer_id
        self._summary = _Summary()
        # Tool calls of the open message, sent together once the message is complete.
        self._calls: list[dict[str, Any]] = []

    def encode(self, event: Event) -> list[Frame]:
        self._summary.note(event)
        if isinstance(event, TextDelta):
            text = {"role": "assistant", "content": event.text, "id": event.message_id}
            return [self._chunk(text)]
        if isinstance(event, ToolCallFinished):
            self._calls.append(_tool_call(event))
            return []
        if isinstance(event, MessageFinished) and self._calls:
            calls = {
                "role": "assistant",
                "content": "",
                "tool_calls": self._calls,
                "id": event.message_id,
            }
            self._calls = []
            return [self._chunk(calls)]
        if isinstance(event, ToolResult):
            return [self._chunk(_tool_message(event))]
        if isinstance(event, RunEnded):
            # The closing chunk adds nothing to the last message's text; it carries the
            # finish reason, usage and custom outputs, under that message's id.
            message_id = self._summary.last_assistant_id or new_id()
            closing = {"role": "assistant", "content": "", "id": message_id}
            return [self._chunk(closing, **self._summary.fields(self._trace_return))]
        if isinstance(event, RunFailed):
            return [Frame(error_payload(event.error, self._request_id))]
        return []

    def _chunk(self, delta: dict[str, Any], **fields: Any) -> Frame:
        return Frame({"id": self._answer_id, "delta": delta, **fields})


class ChatAgentReducer:
    """Events → one ChatAgentResponse body."""

    def __init__(self, trace_return: TraceReturn, answer_id: str) -> None:
        self._trace_return = trace_return
        self._answer_id = answer_id
        self._summary = _Summary()
        self._messages: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}

    def add(self, event: Event) -> None:
        self._summary.note(event)
        if isinstance(event, MessageStarted):
            message: dict[str, Any] = {"role": "assistant", "content": "", "id": event.message_id}
            self._by_id[event.message_id] = message
            self._messages.append(message)
        elif isinstance(event, TextDelta):
            self._by_id[event.message_id]["content"] += event.text
        elif isinstance(event, ToolCallFinished):
            self._by_id[event.message_id].setdefault("tool_calls", []).append(_tool_call(event))
        elif isinstance(event, ToolResult):
            self._messages.append(_tool_message(event))

    def result(self) -> dict[str, Any]:
        messages = [dict(message) for message in self._messages]
        return {
            "id": self._answer_id,
            "messages": messages,
            **self._summary.fields(self._trace_return),
        }
