"""agent/v2/chat as an agent writes it (MLflow's ChatAgent types): its chunks or response
read into events, and the request it expects built from a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast, get_args

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agent_service.agents.native.answer_builder import AnswerBuilder
from agent_service.agents.native.common import text_of, tool_arguments
from agent_service.events import Event, FinishReason
from agent_service.run import AgentRun

_FINISH_REASONS = frozenset(get_args(FinishReason))


class ChatAgentReader:
    """ChatAgentChunks (or one ChatAgentResponse) → events. Chunks of one message share its
    id; a tool message is the result of one of the agent's own tools."""

    def __init__(self, client_tools: frozenset[str]) -> None:
        self._answer = AnswerBuilder(client_tools)
        self._finish: FinishReason | None = None

    def read(self, chunk: Mapping[str, Any]) -> list[Event]:
        events = self._message(chunk.get("delta") or {})
        events.extend(self._extras(chunk))
        return events

    def read_whole(self, response: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        for message in response.get("messages") or ():
            events.extend(self._message(message))
        events.extend(self._extras(response))
        events.extend(self.close())
        return events

    def close(self) -> list[Event]:
        return self._answer.finish(self._finish)

    def _message(self, message: Mapping[str, Any]) -> list[Event]:
        if message.get("role") == "tool":
            return self._answer.tool_result(
                str(message.get("tool_call_id") or ""),
                text_of(message.get("content")),
                str(message.get("name") or "") or None,
            )
        key = str(message.get("id") or "")
        events = self._answer.text(key, text_of(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            events.extend(
                self._answer.whole_call(
                    key,
                    str(call.get("id") or ""),
                    str(function.get("name") or ""),
                    tool_arguments(function.get("arguments") or ""),
                )
            )
        return events

    def _extras(self, body: Mapping[str, Any]) -> list[Event]:
        if (reason := body.get("finish_reason")) in _FINISH_REASONS:
            self._finish = cast(FinishReason, reason)
        return self._answer.chat_usage_and_outputs(body)


def request_from_run(run: AgentRun) -> dict[str, Any]:
    """The ChatAgentRequest body for a run that arrived in another protocol."""
    body: dict[str, Any] = {"messages": [_message(message) for message in run.messages]}
    if run.options.custom_inputs:
        body["custom_inputs"] = dict(run.options.custom_inputs)
    if run.options.context:
        body["context"] = dict(run.options.context)
    return body


def _message(message: BaseMessage) -> dict[str, Any]:
    converted: dict[str, Any] = {"role": _role(message), "content": message.text}
    if message.id:
        converted["id"] = message.id
    if isinstance(message, ToolMessage):
        converted.update(tool_call_id=message.tool_call_id, name=message.name or "tool")
    if isinstance(message, AIMessage) and message.tool_calls:
        converted["content"] = message.text or None
        converted["tool_calls"] = [
            {
                "id": call.get("id") or "",
                "type": "function",
                "function": {"name": call["name"], "arguments": tool_arguments(call["args"])},
            }
            for call in message.tool_calls
        ]
    return converted


def _role(message: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant"}.get(message.type, message.type)
