"""agent/v1/chat: OpenAI Chat Completions and MLflow ChatModel (PROTOCOLS.md §2).

One assistant message reaches the client: the agent's own tool calls and their results stay
inside the run, since the client must not execute them. Text the model wrote before calling
an agent tool ("Let me look that up.") was already streamed, so it stays in the answer,
separated from what follows by a blank line. Tool calls to tools the client offered are
returned (`finish_reason: "tool_calls"`) for the client to execute.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_service.events import (
    Event,
    MessageStarted,
    RunEnded,
    RunFailed,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
)
from agent_service.protocols.base import Frame, RequestContext, TraceReturn
from agent_service.protocols.common import (
    RunSummary,
    client_tools_of,
    databricks_output,
    error_payload,
    messages_from_openai,
    new_id,
    run_options,
    with_trace_id,
)
from agent_service.protocols.registry import TaskName
from agent_service.run import AgentRun

# Request fields passed to the chat model unchanged (OpenAI names, MLflow's top_k).
_MODEL_PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "response_format",
    "logit_bias",
)


class ChatCompletionsTask:
    name: TaskName = "agent/v1/chat"

    def exchange(self, body: Mapping[str, Any], context: RequestContext) -> ChatCompletionsExchange:
        client_tools = client_tools_of(body.get("tools"))
        tool_params = {
            key: body[key]
            for key in ("tool_choice", "parallel_tool_calls")
            if client_tools and body.get(key) is not None
        }
        options = run_options(
            body,
            context,
            model_params={key: body[key] for key in _MODEL_PARAMS if body.get(key) is not None},
            client_tools=client_tools,
            tool_params=tool_params,
        )
        stream_options = body.get("stream_options") or {}
        return ChatCompletionsExchange(
            run=AgentRun(
                messages_from_openai(body["messages"]),
                options,
                context.wire_request(self.name, body),
            ),
            completion_id=f"chatcmpl-{new_id()}",
            created=int(time.time()),
            model=str(body.get("model") or context.agent_name),
            include_usage=bool(stream_options.get("include_usage")),
            trace_return=context.trace_return,
        )


@dataclass(frozen=True, slots=True)
class ChatCompletionsExchange:
    run: AgentRun
    completion_id: str
    created: int
    model: str
    include_usage: bool
    trace_return: TraceReturn

    def encoder(self) -> ChunkEncoder:
        return ChunkEncoder(self)

    def reducer(self) -> CompletionReducer:
        return CompletionReducer(self)


# Between the texts of two assistant messages of one run.
MESSAGE_SEPARATOR = "\n\n"


@dataclass(slots=True)
class _Answer:
    """What the client is told, accumulated from events; shared by encoder and reducer."""

    client_calls: dict[str, int] = field(default_factory=dict)
    summary: RunSummary = field(default_factory=RunSummary)
    text_message: str | None = None

    def text_of(self, event: TextDelta) -> str:
        """The content to add for `event`: its text, after a separator when it starts the
        text of a new message."""
        if event.message_id == self.text_message:
            return event.text
        separator = MESSAGE_SEPARATOR if self.text_message is not None else ""
        self.text_message = event.message_id
        return separator + event.text

    def note(self, event: Event) -> None:
        if isinstance(event, ToolCallStarted) and event.client:
            self.client_calls[event.call_id] = len(self.client_calls)
        self.summary.note(event)

    def final_fields(self, trace_return: TraceReturn) -> dict[str, Any]:
        """custom_outputs (with the trace id when asked) and databricks_output (when asked)."""
        fields: dict[str, Any] = databricks_output(trace_return)
        custom_outputs = with_trace_id(self.summary.custom_outputs, trace_return)
        if custom_outputs is not None:
            fields["custom_outputs"] = custom_outputs
        return fields

    @property
    def finish_reason(self) -> str:
        if self.client_calls:
            return "tool_calls"
        # A "tool_calls" ending of the agent's own tools is not the client's business.
        last = self.summary.last_finish
        return "stop" if last == "tool_calls" else last


class ChunkEncoder:
    """Events → `chat.completion.chunk` payloads."""

    def __init__(self, exchange: ChatCompletionsExchange) -> None:
        self._exchange = exchange
        self._answer = _Answer()
        self._role_sent = False

    def encode(self, event: Event) -> list[Frame]:
        self._answer.note(event)
        if isinstance(event, TextDelta):
            return [*self._role(), self._chunk({"content": self._answer.text_of(event)})]
        if isinstance(event, ToolCallStarted) and event.client:
            fragment = {
                "index": self._answer.client_calls[event.call_id],
                "id": event.call_id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return [*self._role(), self._chunk({"tool_calls": [fragment]})]
        if isinstance(event, ToolCallArgumentsDelta):
            index = self._answer.client_calls.get(event.call_id)
            if index is None:
                return []
            fragment = {"index": index, "function": {"arguments": event.delta}}
            return [self._chunk({"tool_calls": [fragment]})]
        if isinstance(event, MessageStarted):
            return self._role()
        if isinstance(event, RunEnded):
            return self._closing()
        if isinstance(event, RunFailed):
            return [Frame(error_payload(event.error, self._exchange.run.options.request_id))]
        return []

    def _role(self) -> list[Frame]:
        if self._role_sent:
            return []
        self._role_sent = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _closing(self) -> list[Frame]:
        last = self._choice_chunk({}, finish_reason=self._answer.finish_reason)
        last.update(self._answer.final_fields(self._exchange.trace_return))
        frames = [*self._role(), Frame(last)]
        if self._exchange.include_usage:
            usage_chunk = self._envelope(choices=[])
            usage_chunk["usage"] = self._answer.summary.usage.chat_completions()
            frames.append(Frame(usage_chunk))
        return frames

    def _chunk(self, delta: dict[str, Any]) -> Frame:
        return Frame(self._choice_chunk(delta, finish_reason=None))

    def _choice_chunk(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope(choices=[choice])

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        exchange = self._exchange
        payload: dict[str, Any] = {
            "id": exchange.completion_id,
            "object": "chat.completion.chunk",
            "created": exchange.created,
            "model": exchange.model,
            "choices": choices,
        }
        if exchange.include_usage:
            # Only when asked: clients that index choices[0] crash on the usage chunk.
            payload["usage"] = None
        return payload


class CompletionReducer:
    """Events → one `chat.completion` body."""

    def __init__(self, exchange: ChatCompletionsExchange) -> None:
        self._exchange = exchange
        self._answer = _Answer()
        self._text: list[str] = []
        self._calls: dict[str, dict[str, Any]] = {}

    def add(self, event: Event) -> None:
        self._answer.note(event)
        if isinstance(event, TextDelta):
            self._text.append(self._answer.text_of(event))
        elif isinstance(event, ToolCallStarted) and event.client:
            self._calls[event.call_id] = {
                "id": event.call_id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
        elif isinstance(event, ToolCallArgumentsDelta) and event.call_id in self._calls:
            self._calls[event.call_id]["function"]["arguments"] += event.delta

    def result(self) -> dict[str, Any]:
        text = "".join(self._text)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not self._calls else None,
            "refusal": None,
        }
        if self._calls:
            message["tool_calls"] = list(self._calls.values())
        exchange = self._exchange
        body: dict[str, Any] = {
            "id": exchange.completion_id,
            "object": "chat.completion",
            "created": exchange.created,
            "model": exchange.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._answer.finish_reason,
                }
            ],
        }
        if self._answer.summary.usage.reported:
            body["usage"] = self._answer.summary.usage.chat_completions()
        body.update(self._answer.final_fields(exchange.trace_return))
        return body
