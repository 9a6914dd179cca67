"""What every task module provides, as plain data and pure functions (no aiohttp here).

A task module owns one wire protocol: it turns a validated request body into an `AgentRun`
(graph input + run options), encodes internal events as that protocol's stream frames, and
reduces the same events into that protocol's non-streaming body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.callbacks import BaseCallbackHandler

from agent_service.events import Event
from agent_service.protocols.registry import TaskName
from agent_service.run import AgentRun, ThreadRef, WireRequest


@dataclass(frozen=True, slots=True)
class Frame:
    """One stream event: a JSON payload and, for protocols that name their events, its type."""

    payload: Mapping[str, Any]
    event: str | None = None


@dataclass(slots=True)
class TraceReturn:
    """What the client asked to get back about the trace of its request; the server fills it
    in as the request runs and the encoders put it in the final body or frame."""

    # `x-mlflow-return-trace-id: true`: the id, in custom_outputs (metadata for Responses).
    trace_id: str | None = None
    # `databricks_options.return_trace`: the whole trace, as `databricks_output.trace`.
    trace: dict[str, Any] | None = None
    wants_trace: bool = False


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the server knows about a request besides its body."""

    request_id: str
    agent_name: str
    # LangChain callbacks for the run (the trace's span recorder).
    callbacks: tuple[BaseCallbackHandler, ...] = ()
    trace_return: TraceReturn = field(default_factory=TraceReturn)
    # The caller's own token (Databricks Apps user authorization), for this request only.
    user_token: str | None = field(default=None, repr=False)
    # The request headers, for agents that read them themselves.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The conversation memory the run joins (None: stateless).
    thread: ThreadRef | None = None
    # The request came on an OpenAI-compatible route (/v1/...), not /invocations.
    openai_route: bool = False

    def wire_request(self, task: str, body: Mapping[str, Any]) -> WireRequest:
        return WireRequest(task, body, self.headers)


class Encoder(Protocol):
    def encode(self, event: Event) -> list[Frame]:
        """The frames to send for `event`, in order (often one, sometimes none)."""


class Reducer(Protocol):
    def add(self, event: Event) -> None:
        """Fold one event into the body being built."""

    def result(self) -> dict[str, Any]:
        """The non-streaming body for everything added so far."""


class Exchange(Protocol):
    """One request of one task: its agent run and the protocol state to answer it."""

    @property
    def run(self) -> AgentRun: ...

    def encoder(self) -> Encoder: ...

    def reducer(self) -> Reducer: ...


class Task(Protocol):
    name: TaskName

    def exchange(self, body: Mapping[str, Any], context: RequestContext) -> Exchange:
        """Prepare the run for a validated body (raises `InvalidBody` for what the schema
        cannot express)."""
