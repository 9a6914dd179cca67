"""Agents written against a wire protocol's own types (MLflow's ResponsesAgent, ChatAgent and
ChatModel shapes, OpenAI's): what they produce read into events, and the request they expect
built from a run that arrived in another protocol. One module per protocol; `NATIVE` maps a
task name to it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent_service.agents.native import chat_agent, chat_completions, responses
from agent_service.events import Event
from agent_service.run import AgentRun


class Reader(Protocol):
    def read(self, unit: Mapping[str, Any]) -> list[Event]:
        """The events for one stream unit the agent yielded."""

    def read_whole(self, body: Mapping[str, Any]) -> list[Event]:
        """The events for a whole answer the agent returned (the message closed)."""

    def close(self) -> list[Event]:
        """The events that end a stream (the open message closed)."""


@dataclass(frozen=True, slots=True)
class NativeProtocol:
    reader: Callable[[frozenset[str]], Reader]
    request_from_run: Callable[[AgentRun], dict[str, Any]]


NATIVE: dict[str, NativeProtocol] = {
    "agent/v1/chat": NativeProtocol(
        chat_completions.ChatCompletionsReader, chat_completions.request_from_run
    ),
    "agent/v2/chat": NativeProtocol(chat_agent.ChatAgentReader, chat_agent.request_from_run),
    "agent/v1/responses": NativeProtocol(responses.ResponsesReader, responses.request_from_run),
}
