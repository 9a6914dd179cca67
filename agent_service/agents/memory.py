"""Stateful runs: the graph joins a LangGraph thread of the state store's checkpointer.

Before the run the thread's state is read once: the messages it holds decide what of a
resent conversation is new (`state.resend`), and a run that starts from another thread
(`ThreadRef.seed_*`) copies that thread's messages in front of its input. The run writes
one checkpoint, when it ends (durability "exit": a turn that dies half-way leaves the
thread as it was, instead of a half-finished turn) — except a durable run
(`ThreadRef.durable`, a background run that may be resumed): it checkpoints every step.

Instructions are per request (OpenAI's rule for `instructions`): the system message that
carries them has a fixed id, so a later turn's instructions replace it in place and a turn
without any removes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, RemoveMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Durability

from agent_service.agents.graph_contract import MESSAGES, AnyGraph
from agent_service.run import INSTRUCTIONS_MESSAGE_ID, AgentRun, ThreadRef
from agent_service.state.resend import new_part

DURABILITY: Durability = "exit"


@dataclass(frozen=True, slots=True)
class ThreadInput:
    graph_input: dict[str, Any]
    # Every message the thread held or the request brought: the rest is the answer.
    known: list[BaseMessage]


async def thread_input(memory: AnyGraph, run: AgentRun, thread: ThreadRef) -> ThreadInput:
    held: list[BaseMessage] = []
    if thread.thread_id is not None:
        held = await _messages(memory, thread.thread_id, thread.checkpoint_id)
    incoming = [_with_id(message) for message in run.messages]
    if thread.resends_history:
        incoming = new_part(held, incoming)
    if thread.seed_thread_id is not None:
        seed = await _messages(memory, thread.seed_thread_id, thread.seed_checkpoint_id)
        incoming = [*_without_instructions(seed), *incoming]
    messages: list[BaseMessage] = list(incoming)
    if any(m.id == INSTRUCTIONS_MESSAGE_ID for m in held) and not any(
        m.id == INSTRUCTIONS_MESSAGE_ID for m in messages
    ):
        messages.insert(0, RemoveMessage(id=INSTRUCTIONS_MESSAGE_ID))
    return ThreadInput({MESSAGES: messages}, [*held, *messages])


def checkpoint_id_of(config: RunnableConfig | Any) -> str | None:
    configurable = (config or {}).get("configurable") or {}
    value = configurable.get("checkpoint_id")
    return str(value) if value else None


async def _messages(
    memory: AnyGraph, thread_id: str, checkpoint_id: str | None
) -> list[BaseMessage]:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    snapshot = await memory.aget_state({"configurable": configurable})
    return list(snapshot.values.get(MESSAGES) or ())


def pending_tool_calls(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """The tool calls of the last model message that have no result yet: what a tools node
    would run next."""
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
            return [dict(call) for call in message.tool_calls if call.get("id") not in answered]
    return []


def _with_id(message: BaseMessage) -> BaseMessage:
    if message.id:
        return message
    return message.model_copy(update={"id": uuid.uuid4().hex})


def _without_instructions(messages: list[BaseMessage]) -> list[BaseMessage]:
    return [message for message in messages if message.id != INSTRUCTIONS_MESSAGE_ID]
