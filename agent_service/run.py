"""What one request hands the agent: the conversation, the run options, the request itself.

The vocabulary between the protocol modules (which build an `AgentRun` from a request) and
the agents (which run it). Request-scoped data travels here, never in globals: the model
parameters the client asked for, MLflow's `custom_inputs` and `context`, the tools the client
offered. A LangGraph graph reads the options from its run config with `RunOptions.of(config)`;
agents written against a protocol's own types (`@invoke`/`@stream` functions, MLflow agent
classes) get the request as the client sent it (`AgentRun.request`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

# The key under `configurable` that holds the RunOptions of the current run.
CONFIG_KEY = "agent_service_run"
# The id of the system message that carries a request's instructions (Responses
# `instructions`): in a thread, the next turn's replace them in place.
INSTRUCTIONS_MESSAGE_ID = "agent-service-instructions"


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """Where a stateful run's conversation memory is (a LangGraph thread of the state
    store's checkpointer) and how the run joins it."""

    # The thread the run reads and extends; None: the run is not saved (it may still start
    # from a copy of another thread's messages, `seed_*`).
    thread_id: str | None
    # Start from this checkpoint (a fork, as LangGraph's time travel does); None: the latest.
    checkpoint_id: str | None = None
    # The client resends the whole conversation each turn: only the new part is added
    # (agent_service/state/resend.py has the rule).
    resends_history: bool = False
    # Copy the messages of this thread (at this checkpoint) in front of the input.
    seed_thread_id: str | None = None
    seed_checkpoint_id: str | None = None
    # The name the client knows the thread by, returned as custom_outputs.thread_id; None
    # when the client has its own handle (a response or conversation id).
    client_name: str | None = None
    # Checkpoint after every step (not only at the end), reported as `StepSaved`: a
    # background run that another worker may resume (BACKGROUND_RESUME=checkpoint).
    durable: bool = False


@dataclass(frozen=True, slots=True)
class RunOptions:
    request_id: str
    # Parameters for the chat model call: temperature, max_tokens, stop, ... exactly as the
    # OpenAI Chat Completions API names them (the task adapters translate other protocols).
    model_params: Mapping[str, Any] = field(default_factory=dict)
    custom_inputs: Mapping[str, Any] = field(default_factory=dict)
    # MLflow's ChatContext: conversation_id, user_id.
    context: Mapping[str, Any] = field(default_factory=dict)
    # Function tools the client offered, in the OpenAI Chat Completions `tools` format. When
    # the model calls one of them the run stops and the call goes back to the client.
    client_tools: tuple[Mapping[str, Any], ...] = ()
    # How the model may use tools: `tool_choice`, `parallel_tool_calls` (Chat Completions form).
    tool_params: Mapping[str, Any] = field(default_factory=dict)
    # LangChain callbacks of this run: the trace's span recorder.
    callbacks: tuple[BaseCallbackHandler, ...] = ()
    # On Databricks Apps with user authorization, the caller's own access token
    # (X-Forwarded-Access-Token): for tools that act as the user. This request only; never
    # logged, stored or traced (repr hides it; the trace records the body, not headers).
    user_token: str | None = field(default=None, repr=False)
    # Conversation memory: None runs the graph statelessly, as it always did.
    thread: ThreadRef | None = None

    @property
    def client_tool_names(self) -> frozenset[str]:
        return frozenset(str(tool["function"]["name"]) for tool in self.client_tools)

    def to_config(self) -> RunnableConfig:
        configurable: dict[str, Any] = {CONFIG_KEY: self}
        if self.thread is not None and self.thread.thread_id is not None:
            configurable["thread_id"] = self.thread.thread_id
            if self.thread.checkpoint_id is not None:
                configurable["checkpoint_id"] = self.thread.checkpoint_id
        config: RunnableConfig = {"configurable": configurable, "run_name": "agent"}
        if self.callbacks:
            config["callbacks"] = list(self.callbacks)
        return config

    @classmethod
    def of(cls, config: RunnableConfig | None) -> RunOptions:
        """The options of the run `config` belongs to (defaults when called outside a request,
        for example when a user runs the graph directly)."""
        configurable = (config or {}).get("configurable") or {}
        options = configurable.get(CONFIG_KEY)
        return options if isinstance(options, RunOptions) else cls(request_id="")


@dataclass(frozen=True, slots=True)
class WireRequest:
    """The request as its client sent it: the protocol (task name) it arrived in, the
    validated body and the request headers."""

    task: str
    body: Mapping[str, Any]
    # Case-insensitive, as received: the caller's credentials included, for this request
    # only. Never logged or traced.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def agent_body(self) -> dict[str, Any]:
        """The body an agent sees: without `stream`, which belongs to the transport."""
        return {key: value for key, value in self.body.items() if key != "stream"}


@dataclass(frozen=True, slots=True)
class AgentRun:
    """One request's input for the agent: the conversation, the run options and the request."""

    messages: Sequence[BaseMessage]
    options: RunOptions
    request: WireRequest = field(default_factory=lambda: WireRequest(task="", body={}))
