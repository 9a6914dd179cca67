"""agent/v1/responses as an agent writes it (MLflow's ResponsesAgent types): its output read
into events, and the request it expects built from a run.

A handler may yield anything from OpenAI's full event sequence down to what MLflow's helpers
make: `response.output_text.delta` events without sequence numbers or indexes
(`create_text_delta`) and `response.output_item.done` items (`create_text_output_item`,
`create_function_call_item`, `create_function_call_output_item`). Either way the client gets
the complete sequence: the protocol encoder rebuilds it from these events.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agent_service.agents.native.answer_builder import AnswerBuilder
from agent_service.agents.native.common import AgentOutputError, text_of, tool_arguments
from agent_service.events import Event
from agent_service.run import AgentRun

log = logging.getLogger(__name__)


class ResponsesReader:
    """Stream events (or a whole response) of a Responses agent → events."""

    def __init__(self, client_tools: frozenset[str]) -> None:
        self._answer = AnswerBuilder(client_tools)
        # Function call items by item id (argument deltas name the item, not the call).
        self._calls: dict[str, str] = {}
        self._incomplete = False

    def read(self, event: Mapping[str, Any]) -> list[Event]:
        kind = event.get("type")
        events: list[Event] = []
        if kind == "response.output_text.delta":
            events = self._answer.text(str(event.get("item_id") or ""), str(event["delta"]))
        elif kind == "response.output_item.added":
            events = self._item_added(event["item"])
        elif kind == "response.function_call_arguments.delta":
            call_id = self._calls.get(str(event.get("item_id")))
            events = self._answer.call_arguments(call_id, str(event["delta"])) if call_id else []
        elif kind == "response.output_item.done":
            events = self._item_done(event["item"])
        elif kind in ("response.completed", "response.incomplete"):
            events = self._totals(event.get("response") or {})
        elif kind in ("error", "response.failed"):
            log.error("The agent's stream reported a failure: %s", event)
            raise AgentOutputError("the agent reported a failure")
        events.extend(self._answer.custom_outputs(event.get("custom_outputs")))
        return events

    def read_whole(self, response: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        for item in response.get("output") or ():
            events.extend(self._item_done(item))
        events.extend(self._totals(response))
        events.extend(self.close())
        return events

    def close(self) -> list[Event]:
        return self._answer.finish("length" if self._incomplete else None)

    def _item_added(self, item: Mapping[str, Any]) -> list[Event]:
        if item.get("type") == "message":
            return self._answer.text(str(item.get("id") or ""), "")
        if item.get("type") == "function_call":
            return self._call_started(item)
        return []

    def _item_done(self, item: Mapping[str, Any]) -> list[Event]:
        kind = item.get("type")
        if kind == "message":
            text = "".join(
                str(part.get("text") or "")
                for part in item.get("content") or ()
                if part.get("type") == "output_text"
            )
            return self._answer.whole_text(str(item.get("id") or ""), text)
        if kind == "function_call":
            call_id = str(item.get("call_id") or item.get("id") or "")
            return [
                *self._call_started(item),
                *self._answer.call_finished(call_id, str(item.get("arguments") or "")),
            ]
        if kind == "function_call_output":
            return self._answer.tool_result(str(item["call_id"]), text_of(item.get("output")))
        return []  # reasoning and other items are not ours to show yet

    def _call_started(self, item: Mapping[str, Any]) -> list[Event]:
        call_id = str(item.get("call_id") or item.get("id") or "")
        self._calls[str(item.get("id") or call_id)] = call_id
        return self._answer.call_started(None, call_id, str(item.get("name") or ""))

    def _totals(self, response: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        if response.get("status") == "incomplete":
            self._incomplete = True
        if isinstance(usage := response.get("usage"), Mapping):
            events.extend(
                self._answer.usage(
                    usage.get("input_tokens"), usage.get("output_tokens"), usage.get("total_tokens")
                )
            )
        events.extend(self._answer.custom_outputs(response.get("custom_outputs")))
        return events


def request_from_run(run: AgentRun) -> dict[str, Any]:
    """The ResponsesAgentRequest body for a run that arrived in another protocol."""
    body: dict[str, Any] = {"input": [item for m in run.messages for item in _items(m)]}
    options = run.options
    if options.custom_inputs:
        body["custom_inputs"] = dict(options.custom_inputs)
    if options.context:
        body["context"] = dict(options.context)
    if options.client_tools:
        body["tools"] = [{"type": "function", **tool["function"]} for tool in options.client_tools]
    return body


def _items(message: BaseMessage) -> list[dict[str, Any]]:
    if isinstance(message, ToolMessage):
        return [
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id,
                "output": message.text,
            }
        ]
    if isinstance(message, AIMessage):
        items: list[dict[str, Any]] = []
        if message.text:
            items.append({"role": "assistant", "content": message.text})
        items.extend(
            {
                "type": "function_call",
                "call_id": call.get("id") or "",
                "name": call["name"],
                "arguments": tool_arguments(call["args"]),
            }
            for call in message.tool_calls
        )
        return items
    role = "user" if isinstance(message, HumanMessage) else message.type
    return [{"role": "system" if role == "system" else role, "content": message.text}]
