"""Runs the agent graph and turns what LangGraph produces into internal events.

`invoke` calls `graph.ainvoke` and converts the new messages of the final state; `stream`
calls `graph.astream` (message chunks + node updates) and converts as chunks arrive. Both
produce the same event sequence for the same answer, so the task reducers give the same body
either way. Failures are translated into our error hierarchy here, once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_args

import orjson
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    ToolMessage,
)
from langgraph.types import StreamMode

from agent_service.agents.default_graph import AgentGraph, AgentState
from agent_service.events import (
    CustomOutputs,
    Event,
    FinishReason,
    MessageFinished,
    MessageStarted,
    RunEnded,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolResult,
    Usage,
)
from agent_service.models.upstream import translate
from agent_service.run import AgentRun

log = logging.getLogger(__name__)

_FINISH_REASONS = frozenset(get_args(FinishReason))
# Token chunks as the model produces them, and each node's update when it finishes (which
# carries the complete message: its usage, finish reason, and any message not streamed).
_STREAM_MODES: list[StreamMode] = ["messages", "updates"]


class GraphAgent:
    """A compiled LangGraph graph behind the agent interface."""

    def __init__(self, graph: AgentGraph) -> None:
        self.graph = graph
        self.kind = f"LangGraph graph {graph.name!r}"

    async def invoke(self, run: AgentRun) -> list[Event]:
        return await invoke(self.graph, run)

    def stream(self, run: AgentRun) -> AsyncIterator[Event]:
        return stream(self.graph, run)


async def invoke(graph: AgentGraph, run: AgentRun) -> list[Event]:
    """Run the graph to completion; the events of everything it added to the conversation."""
    try:
        state = await graph.ainvoke(_graph_input(run), run.options.to_config())
    except Exception as exc:
        raise translate(exc) from exc
    new_messages = state["messages"][len(run.messages) :]
    client_tools = run.options.client_tool_names
    events: list[Event] = []
    for message in new_messages:
        events.extend(_complete_message_events(message, client_tools))
    if (custom_outputs := state.get("custom_outputs")) is not None:
        events.append(CustomOutputs(dict(custom_outputs)))
    events.append(RunEnded())
    return events


async def stream(graph: AgentGraph, run: AgentRun) -> AsyncIterator[Event]:
    """Run the graph, yielding events as the model produces tokens."""
    tracker = _StreamTracker(run.options.client_tool_names)
    try:
        async for part in graph.astream(
            _graph_input(run),
            run.options.to_config(),
            stream_mode=_STREAM_MODES,
            version="v2",
        ):
            if part["type"] == "messages":
                chunk, _metadata = part["data"]
                if isinstance(chunk, AIMessageChunk):
                    for event in tracker.on_chunk(chunk):
                        yield event
            elif part["type"] == "updates":
                for event in tracker.on_updates(part["data"]):
                    yield event
    except Exception as exc:
        raise translate(exc) from exc
    yield RunEnded()


def _complete_message_events(message: BaseMessage, client_tools: frozenset[str]) -> list[Event]:
    """Events for a message that arrives whole (ainvoke, or a node that did not stream)."""
    if isinstance(message, ToolMessage):
        return [_tool_result(message)]
    if not isinstance(message, AIMessage):
        return []
    message_id = _new_id()
    events: list[Event] = [MessageStarted(message_id)]
    if text := _text_of(message):
        events.append(TextDelta(message_id, text))
    for index, call in enumerate(_calls_of(message)):
        client = call.name in client_tools
        events.append(ToolCallStarted(message_id, call.call_id, call.name, index, client))
        if call.arguments:
            events.append(ToolCallArgumentsDelta(message_id, call.call_id, index, call.arguments))
        events.append(
            ToolCallFinished(message_id, call.call_id, call.name, index, call.arguments, client)
        )
    events.extend(_closing_events(message, message_id))
    return events


def _closing_events(message: AIMessage, message_id: str) -> list[Event]:
    events: list[Event] = [MessageFinished(message_id, _finish_reason(message))]
    if usage := message.usage_metadata:
        events.append(
            Usage(
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            )
        )
    return events


@dataclass(slots=True)
class _OpenCall:
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _OpenMessage:
    message_id: str
    calls: dict[int, _OpenCall] = field(default_factory=dict)


class _StreamTracker:
    """Follows streamed chunks of the messages being generated and closes each message when
    its node reports the complete message in an update."""

    def __init__(self, client_tools: frozenset[str]) -> None:
        self._client_tools = client_tools
        self._open: dict[str, _OpenMessage] = {}
        # Messages whose chunks were streamed; their complete form only closes them.
        self._streamed: set[str] = set()

    def on_chunk(self, chunk: AIMessageChunk) -> Iterable[Event]:
        text = _text_of(chunk)
        if not text and not chunk.tool_call_chunks:
            # Usage-only and end-of-stream markers carry nothing to stream; the complete
            # message in the node's update has the usage and the finish reason.
            return ()
        # Our own id for each message: providers' ids are not always unique within a run.
        key = chunk.id or ""
        events: list[Event] = []
        message = self._open.get(key)
        if message is None:
            message = self._open[key] = _OpenMessage(_new_id())
            self._streamed.add(key)
            events.append(MessageStarted(message.message_id))
        message_id = message.message_id
        if text:
            events.append(TextDelta(message_id, text))
        for fragment in chunk.tool_call_chunks:
            index = fragment.get("index")
            index = len(message.calls) if index is None else index
            call = message.calls.get(index)
            if call is None:
                name = fragment.get("name") or ""
                call = message.calls[index] = _OpenCall(fragment.get("id") or _new_id(), name)
                client = name in self._client_tools
                events.append(ToolCallStarted(message_id, call.call_id, name, index, client))
            if arguments := fragment.get("args"):
                call.arguments.append(arguments)
                events.append(ToolCallArgumentsDelta(message_id, call.call_id, index, arguments))
        return events

    def on_updates(self, updates: Mapping[str, Any]) -> Iterable[Event]:
        events: list[Event] = []
        for update in updates.values():
            if not isinstance(update, Mapping):
                continue
            for message in _as_list(update.get("messages")):
                events.extend(self._on_complete_message(message))
            if (custom_outputs := update.get("custom_outputs")) is not None:
                events.append(CustomOutputs(dict(custom_outputs)))
        return events

    def _on_complete_message(self, message: BaseMessage) -> list[Event]:
        key = message.id or ""
        if not isinstance(message, AIMessage) or key not in self._streamed:
            return _complete_message_events(message, self._client_tools)
        opened = self._open.pop(key, None)
        if opened is None:
            return []
        events: list[Event] = []
        for index, call in sorted(opened.calls.items()):
            client = call.name in self._client_tools
            arguments = "".join(call.arguments)
            events.append(
                ToolCallFinished(
                    opened.message_id, call.call_id, call.name, index, arguments, client
                )
            )
        events.extend(_closing_events(message, opened.message_id))
        return events


@dataclass(frozen=True, slots=True)
class _Call:
    call_id: str
    name: str
    arguments: str


def _calls_of(message: AIMessage) -> list[_Call]:
    calls = [
        _Call(call.get("id") or _new_id(), call["name"], _json(call["args"]))
        for call in message.tool_calls
    ]
    calls.extend(
        _Call(call.get("id") or _new_id(), call.get("name") or "", call.get("args") or "")
        for call in message.invalid_tool_calls
    )
    return calls


def _tool_result(message: ToolMessage) -> ToolResult:
    return ToolResult(
        message_id=_new_id(),
        call_id=message.tool_call_id,
        name=message.name or "",
        output=_text_of(message),
    )


def _finish_reason(message: AIMessage) -> FinishReason:
    if message.tool_calls or message.invalid_tool_calls:
        return "tool_calls"
    reason = message.response_metadata.get("finish_reason")
    return cast(FinishReason, reason) if reason in _FINISH_REASONS else "stop"


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def _as_list(value: Any) -> list[BaseMessage]:
    if value is None:
        return []
    if isinstance(value, BaseMessage):
        return [value]
    return [item for item in value if isinstance(item, BaseMessage)]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _new_id() -> str:
    return uuid.uuid4().hex


def _graph_input(run: AgentRun) -> AgentState:
    # LangChain's converters are typed as returning BaseMessage; they build AnyMessage.
    return AgentState(messages=cast(list[AnyMessage], list(run.messages)))
