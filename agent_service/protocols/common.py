"""Pieces several task modules share: request → run options, usage totals, error frames."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages

from agent_service.errors import InvalidBody, ServiceError
from agent_service.events import (
    STEP_LIMIT_REASON,
    CustomOutputs,
    Event,
    MessageFinished,
    StepLimitReached,
    Usage,
)
from agent_service.protocols.base import RequestContext, TraceReturn
from agent_service.run import RunOptions


def run_options(
    body: Mapping[str, Any],
    context: RequestContext,
    *,
    model_params: Mapping[str, Any],
    client_tools: tuple[Mapping[str, Any], ...] = (),
    tool_params: Mapping[str, Any] | None = None,
) -> RunOptions:
    return RunOptions(
        request_id=context.request_id,
        model_params=model_params,
        custom_inputs=body.get("custom_inputs") or {},
        context=body.get("context") or {},
        client_tools=client_tools,
        tool_params=tool_params or {},
        callbacks=context.callbacks,
        user_token=context.user_token,
        thread=context.thread,
    )


def client_tools_of(tools: Iterable[Mapping[str, Any]] | None) -> tuple[Mapping[str, Any], ...]:
    """The client's function tools in the Chat Completions format (other kinds are not ours
    to call: hosted tools such as web search belong to OpenAI's own platform)."""
    return tuple(tool for tool in tools or () if tool.get("type") == "function")


def messages_from_openai(
    messages: Sequence[Mapping[str, Any]], path: str = "$.messages"
) -> list[BaseMessage]:
    """OpenAI-format messages (already schema-checked) → LangChain messages."""
    converted: list[BaseMessage] = []
    for index, message in enumerate(messages):
        try:
            # OpenAI lets an assistant message with tool calls leave out `content`.
            converted.extend(convert_to_messages([{"content": None, **message}]))
        except (ValueError, TypeError, KeyError, NotImplementedError):
            raise InvalidBody(
                f"{path}[{index}]: this message cannot be understood", param=f"{path}[{index}]"
            ) from None
    return converted


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class UsageTotals:
    """Token usage summed over every model call of a run."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reported: bool = False

    def add(self, usage: Usage) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.total_tokens += usage.total_tokens
        self.reported = True

    def chat_completions(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


def with_trace_id(
    custom_outputs: dict[str, Any] | None, trace_return: TraceReturn
) -> dict[str, Any] | None:
    """custom_outputs with the trace id added when the client asked for it."""
    if trace_return.trace_id is None:
        return custom_outputs
    return {**(custom_outputs or {}), "trace_id": trace_return.trace_id}


def databricks_output(trace_return: TraceReturn) -> dict[str, Any]:
    """The `databricks_output` field of a final body, when the client asked for the trace."""
    if trace_return.trace is None:
        return {}
    return {"databricks_output": {"trace": trace_return.trace}}


@dataclass(slots=True)
class RunSummary:
    """What every protocol reports besides the messages: how the last message ended, the
    token usage of all model calls, the graph's custom outputs."""

    last_finish: str = "stop"
    usage: UsageTotals = field(default_factory=UsageTotals)
    custom_outputs: dict[str, Any] | None = None
    # Why the answer is cut short when the model did not say (a step limit), for Responses'
    # `incomplete_details.reason`; None: the model's own `length` (max_output_tokens).
    cut_short: str | None = None

    def note(self, event: Event) -> None:
        if isinstance(event, MessageFinished):
            self.last_finish = event.finish_reason
        elif isinstance(event, StepLimitReached):
            self.last_finish = "length"
            self.cut_short = STEP_LIMIT_REASON
        elif isinstance(event, Usage):
            self.usage.add(event)
        elif isinstance(event, CustomOutputs):
            self.custom_outputs = event.values


def error_payload(error: ServiceError, request_id: str | None = None) -> dict[str, Any]:
    """The in-band terminal error of a stream: the envelope, which the OpenAI SDK raises."""
    return error.to_envelope(request_id)
