"""A well-formed event sequence from pieces that arrive in another protocol's order.

What an agent written against a protocol's own types produces — text deltas keyed by item
or message id, tool calls whole or in fragments, finished items — is fed here piece by
piece; the builder opens and closes messages and calls around them so that the events obey
the order `agent_service.events` promises (a message starts before its deltas, a call
starts before its arguments and finishes after them, a message finishes after its calls).
One message is open at a time: a piece for another message finishes the open one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_service.events import (
    CustomOutputs,
    Event,
    FinishReason,
    MessageFinished,
    MessageStarted,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolResult,
    Usage,
)


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    index: int
    arguments: list[str] = field(default_factory=list)
    finished: bool = False


@dataclass(slots=True)
class _Message:
    key: str
    message_id: str
    text: list[str] = field(default_factory=list)
    calls: dict[str, _Call] = field(default_factory=dict)


class AnswerBuilder:
    def __init__(self, client_tools: frozenset[str]) -> None:
        self._client_tools = client_tools
        self._open: _Message | None = None
        # Every call seen, by call id: a tool result names its call only by id.
        self._names: dict[str, str] = {}

    # --- text ---------------------------------------------------------------------------

    def text(self, key: str, text: str) -> list[Event]:
        """More text of message `key`."""
        events = self._message(key)
        if text:
            assert self._open is not None
            self._open.text.append(text)
            events.append(TextDelta(self._open.message_id, text))
        return events

    def whole_text(self, key: str, text: str) -> list[Event]:
        """The complete text of message `key`: what was not streamed yet, if anything."""
        streamed = "".join(self._open.text) if self._open and self._open.key == key else ""
        if streamed and text.startswith(streamed):
            return self.text(key, text[len(streamed) :])
        if streamed:
            return self._message(key)  # what was streamed stands; it reached the client
        return self.text(key, text)

    # --- tool calls ---------------------------------------------------------------------

    def call_started(self, key: str | None, call_id: str, name: str) -> list[Event]:
        """A call begins, in message `key` (None: the open message, or a new one)."""
        events = self._message(key) if key is not None else self._any_message()
        message = self._open
        assert message is not None
        if call_id in message.calls:
            return events
        call = message.calls[call_id] = _Call(call_id, name, len(message.calls))
        self._names[call_id] = name
        client = name in self._client_tools
        events.append(ToolCallStarted(message.message_id, call_id, name, call.index, client))
        return events

    def call_arguments(self, call_id: str, delta: str) -> list[Event]:
        call = self._call(call_id)
        if call is None or not delta or self._open is None:
            return []
        call.arguments.append(delta)
        return [ToolCallArgumentsDelta(self._open.message_id, call_id, call.index, delta)]

    def call_finished(self, call_id: str, arguments: str | None = None) -> list[Event]:
        """The call is complete; `arguments`, when given, is the whole of them."""
        call = self._call(call_id)
        if call is None or call.finished or self._open is None:
            return []
        events: list[Event] = []
        streamed = "".join(call.arguments)
        if arguments is not None and arguments != streamed:
            rest = arguments[len(streamed) :] if arguments.startswith(streamed) else ""
            events.extend(self.call_arguments(call_id, rest))
        call.finished = True
        whole = "".join(call.arguments)
        client = call.name in self._client_tools
        events.append(
            ToolCallFinished(self._open.message_id, call_id, call.name, call.index, whole, client)
        )
        return events

    def whole_call(self, key: str | None, call_id: str, name: str, arguments: str) -> list[Event]:
        return [
            *self.call_started(key, call_id, name),
            *self.call_finished(call_id, arguments),
        ]

    def tool_result(self, call_id: str, output: str, name: str | None = None) -> list[Event]:
        """The agent ran one of its own tools: the calling message is over."""
        events = self.finish()
        name = name or self._names.get(call_id, "")
        events.append(ToolResult(_new_id(), call_id, name, output))
        return events

    # --- endings and extras -------------------------------------------------------------

    def finish(self, reason: FinishReason | None = None) -> list[Event]:
        """Finish the open message (its unfinished calls first)."""
        message = self._open
        if message is None:
            return []
        self._open = None
        events: list[Event] = []
        for call in message.calls.values():
            if not call.finished:
                call.finished = True
                client = call.name in self._client_tools
                events.append(
                    ToolCallFinished(
                        message.message_id,
                        call.call_id,
                        call.name,
                        call.index,
                        "".join(call.arguments),
                        client,
                    )
                )
        if message.calls:
            reason = "tool_calls"
        events.append(MessageFinished(message.message_id, reason or "stop"))
        return events

    @staticmethod
    def usage(input_tokens: object, output_tokens: object, total_tokens: object) -> list[Event]:
        counts = [value if isinstance(value, int) else 0 for value in (input_tokens, output_tokens)]
        total = total_tokens if isinstance(total_tokens, int) else sum(counts)
        return [Usage(counts[0], counts[1], total)]

    @staticmethod
    def custom_outputs(values: object) -> list[Event]:
        return [CustomOutputs(dict(values))] if isinstance(values, dict) else []

    @classmethod
    def chat_usage_and_outputs(cls, body: Mapping[str, Any]) -> list[Event]:
        """The usage (`prompt_tokens`/`completion_tokens` names) and `custom_outputs` of a
        Chat Completions or ChatAgent body or chunk."""
        events: list[Event] = []
        if isinstance(usage := body.get("usage"), Mapping):
            events.extend(
                cls.usage(
                    usage.get("prompt_tokens"),
                    usage.get("completion_tokens"),
                    usage.get("total_tokens"),
                )
            )
        events.extend(cls.custom_outputs(body.get("custom_outputs")))
        return events

    # --- internals ----------------------------------------------------------------------

    def _message(self, key: str) -> list[Event]:
        if self._open is not None and self._open.key == key:
            return []
        events = self.finish()
        self._open = _Message(key, _new_id())
        events.append(MessageStarted(self._open.message_id))
        return events

    def _any_message(self) -> list[Event]:
        return [] if self._open is not None else self._message(_new_id())

    def _call(self, call_id: str) -> _Call | None:
        return self._open.calls.get(call_id) if self._open is not None else None


def _new_id() -> str:
    return uuid.uuid4().hex
