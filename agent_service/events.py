"""The internal event model: what one agent run produced, independent of any wire protocol.

The runner turns LangGraph's output (streamed message chunks and node updates, or the final
state of `ainvoke`) into these events; each task module encodes them as its own wire frames
and reduces them to its own non-streaming body. Events are plain immutable data.

Order within a run: `MessageStarted` precedes the deltas of that message; `ToolCallStarted`
precedes the argument deltas of that call, `ToolCallFinished` follows them; `MessageFinished`
closes a message after all of its deltas and calls. `ToolResult`, `Usage` and `CustomOutputs`
may appear between messages. Exactly one terminal event ends a run: `RunEnded` or `RunFailed`.
`StepLimitReached`, when it comes, comes just before `RunEnded`: the answer is cut short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from agent_service.errors import ServiceError

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
# What a run ended at MAX_AGENT_STEPS says it reached: the Responses `incomplete_details`
# reason, the trace's end reason, the label of the metric that counts them.
STEP_LIMIT_REASON = "max_agent_steps"


@dataclass(frozen=True, slots=True)
class MessageStarted:
    """An assistant message begins."""

    message_id: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (its summary), before the message's text."""

    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model began a tool call. `client` is true when the tool was offered by the client
    (the run stops and the call is returned) rather than run by the agent itself."""

    message_id: str
    call_id: str
    name: str
    index: int
    client: bool


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    message_id: str
    call_id: str
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    message_id: str
    call_id: str
    name: str
    index: int
    arguments: str
    client: bool


@dataclass(frozen=True, slots=True)
class MessageFinished:
    message_id: str
    finish_reason: FinishReason


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The agent ran one of its own tools; `output` is what the tool returned, as text."""

    message_id: str
    call_id: str
    name: str
    output: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one model call; a run with several calls reports several."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class CustomOutputs:
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ThreadSaved:
    """The run's conversation memory was saved: the LangGraph checkpoint it ended on (a
    stateful run only, just before `RunEnded`). Encoders send nothing for it."""

    thread_id: str
    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class StepSaved:
    """A durable run (`ThreadRef.durable`) saved a LangGraph checkpoint after a step: it can
    be resumed from there. Encoders send nothing for it."""

    checkpoint_id: str


@dataclass(frozen=True, slots=True)
class StepLimitReached:
    """The run was ended at MAX_AGENT_STEPS (or the graph's own step limit): what it
    produced so far is the answer, marked as cut short (`finish_reason: "length"`, a
    Responses `response.incomplete`)."""

    limit: int


@dataclass(frozen=True, slots=True)
class RunFailed:
    """Terminal: the run failed after it started; encoders emit their in-band error frames."""

    error: ServiceError


@dataclass(frozen=True, slots=True)
class RunEnded:
    """Terminal: the run finished normally; encoders emit their closing frames."""


Event = (
    MessageStarted
    | TextDelta
    | ReasoningDelta
    | ToolCallStarted
    | ToolCallArgumentsDelta
    | ToolCallFinished
    | MessageFinished
    | ToolResult
    | Usage
    | CustomOutputs
    | ThreadSaved
    | StepSaved
    | StepLimitReached
    | RunFailed
    | RunEnded
)
