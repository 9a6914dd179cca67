"""Runs a LangGraph graph and turns what it produces into internal events.

One loop serves both answers: `graph.astream` with the "updates" stream mode (every message
a node adds, complete) and, for a streamed answer, the "messages" mode too (the model's
tokens as they come), those of subgraphs included. A message streamed as tokens is closed by its
complete form in an update; messages the run did not add (the conversation it was given, a
subgraph handing its whole state back) are recognised by id and skipped. So a JSON answer and
a stream give the same events for the same run. What a graph must provide is in
`graph_contract.py`. Failures are translated into our error hierarchy here, once.
"""

from __future__ import annotations

import logging
import re
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast, get_args

import orjson
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError
from langgraph.prebuilt import ToolNode
from langgraph.types import StreamMode

from agent_service.agents.graph_contract import MESSAGES, AnyGraph, check_graph
from agent_service.agents.memory import (
    DURABILITY,
    checkpoint_id_of,
    pending_tool_calls,
    thread_input,
)
from agent_service.errors import RunNotResumable
from agent_service.events import (
    CustomOutputs,
    Event,
    FinishReason,
    MessageFinished,
    MessageStarted,
    ReasoningDelta,
    RunEnded,
    StepLimitReached,
    StepSaved,
    TextDelta,
    ThreadSaved,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolResult,
    Usage,
)
from agent_service.models.upstream import translate
from agent_service.run import AgentRun, ThreadRef

log = logging.getLogger(__name__)

_FINISH_REASONS = frozenset(get_args(FinishReason))
# Each node's update when it finishes (the complete messages: usage, finish reason, and any
# message not streamed); for a stream, the model's token chunks as they are produced too.
_UPDATES: list[StreamMode] = ["updates"]
_TOKENS_AND_UPDATES: list[StreamMode] = ["messages", "updates"]


class GraphAgent:
    """A compiled LangGraph graph behind the agent interface. With `memory` (the same graph
    compiled with the state store's checkpointer), a run whose options name a thread joins
    that thread (agents/memory.py)."""

    def __init__(
        self, graph: AnyGraph, *, memory: AnyGraph | None = None, max_steps: int = 0
    ) -> None:
        self.graph = check_graph(graph)
        self.memory = memory
        # MAX_AGENT_STEPS: chat model calls a run may make (agents/step_limit.py); 0 = none.
        self.max_steps = max_steps
        self.kind = f"LangGraph graph {graph.name!r}"

    def with_memory(self, checkpointer: BaseCheckpointSaver[str]) -> GraphAgent:
        """This agent, able to join threads kept by `checkpointer`; stateless runs still
        use the graph as it was compiled."""
        memory = self.graph.copy(update={"checkpointer": checkpointer})
        return GraphAgent(self.graph, memory=memory, max_steps=self.max_steps)

    async def invoke(self, run: AgentRun) -> list[Event]:
        return [event async for event in self._run(run, tokens=False)]

    def stream(self, run: AgentRun) -> AsyncIterator[Event]:
        return self._run(run, tokens=True)

    @property
    def resumable(self) -> bool:
        """Runs in a thread can go on from a checkpoint (BACKGROUND_RESUME=checkpoint)."""
        return self.memory is not None

    def resume(self, run: AgentRun) -> AsyncIterator[Event]:
        """Go on with a run from its thread's checkpoint `run.options.thread.checkpoint_id`
        (the last step it saved): the step that was in progress runs again."""
        thread = run.options.thread
        assert self.memory is not None
        assert thread is not None
        assert thread.thread_id is not None
        return resume_in_thread(self.memory, run, thread, max_steps=self.max_steps)

    def _run(self, run: AgentRun, *, tokens: bool) -> AsyncIterator[Event]:
        thread = run.options.thread
        if thread is None or self.memory is None:
            return run_graph(self.graph, run, tokens=tokens, max_steps=self.max_steps)
        return run_in_thread(
            self.graph, self.memory, run, thread, tokens=tokens, max_steps=self.max_steps
        )


async def run_graph(
    graph: AnyGraph, run: AgentRun, *, tokens: bool, max_steps: int = 0
) -> AsyncIterator[Event]:
    """Run the graph; its events, token by token when `tokens`."""
    conversation = _with_ids(run.messages)
    graph_input = {MESSAGES: conversation}
    async for event in _events(
        graph, graph_input, conversation, run, tokens=tokens, max_steps=max_steps
    ):
        yield event


async def run_in_thread(
    graph: AnyGraph,
    memory: AnyGraph,
    run: AgentRun,
    thread: ThreadRef,
    *,
    tokens: bool,
    max_steps: int = 0,
) -> AsyncIterator[Event]:
    """Run in a thread: from what it holds, saving one checkpoint at the end, reported as
    `ThreadSaved` before `RunEnded`. A run that only starts from a copy of another thread
    (`thread_id` None) saves nothing and runs on the graph without the checkpointer."""
    try:
        prepared = await thread_input(memory, run, thread)
    except Exception as exc:
        raise translate(exc) from exc
    saved = thread.thread_id is not None
    saving = _Saving(thread) if saved else None
    events = _events(
        memory if saved else graph,
        prepared.graph_input,
        prepared.known,
        run,
        tokens=tokens,
        saving=saving,
        max_steps=max_steps,
    )
    async with aclosing(events):
        async for event in events:
            if isinstance(event, RunEnded) and saving is not None and saving.checkpoint_id:
                yield ThreadSaved(saving.thread_id, saving.checkpoint_id)
            yield event


async def resume_in_thread(
    memory: AnyGraph, run: AgentRun, thread: ThreadRef, *, max_steps: int = 0
) -> AsyncIterator[Event]:
    """The rest of a run from a checkpoint it saved: LangGraph runs the nodes that were next
    (the model call, or the tools node, that was in progress) with no new input. Calls to
    tools marked side-effecting are never run twice: the run fails instead (RunNotResumable)."""
    config: RunnableConfig = {
        "configurable": {"thread_id": thread.thread_id, "checkpoint_id": thread.checkpoint_id}
    }
    try:
        snapshot = await memory.aget_state(config)
    except Exception as exc:
        raise translate(exc) from exc
    if not snapshot.next:
        raise RunNotResumable(
            "The worker running this response stopped and its last checkpoint has no step "
            "left to run; start it again."
        )
    known: list[BaseMessage] = list(snapshot.values.get(MESSAGES) or ())
    unsafe = sorted(
        {call["name"] for call in pending_tool_calls(known)} & side_effecting_tools(memory)
    )
    if unsafe:
        raise RunNotResumable(
            "The worker running this response stopped while it was calling "
            f"{', '.join(unsafe)}, which has side effects: it is not run twice. Start the "
            "response again if it should be."
        )
    saving = _Saving(thread)
    events = _events(memory, None, known, run, tokens=True, saving=saving, max_steps=max_steps)
    async with aclosing(events):
        async for event in events:
            if isinstance(event, RunEnded) and saving.checkpoint_id:
                yield ThreadSaved(saving.thread_id, saving.checkpoint_id)
            yield event


# How a tool says that running it twice is not harmless (it sends, pays, writes...):
# `my_tool.metadata = {"side_effects": True}` (or `metadata=` when building the tool).
# A resumed run never calls such a tool again.
SIDE_EFFECTS = "side_effects"


def side_effecting_tools(graph: AnyGraph) -> set[str]:
    """The names of the tools of the graph's ToolNodes (subgraphs' too) marked side-effecting."""
    names: set[str] = set()
    graphs = [graph, *(sub for _, sub in graph.get_subgraphs(recurse=True))]
    for each in graphs:
        for node in getattr(each, "nodes", {}).values():
            bound = getattr(node, "bound", None)
            if isinstance(bound, ToolNode):
                for name, tool in bound.tools_by_name.items():
                    if (tool.metadata or {}).get(SIDE_EFFECTS):
                        names.add(name)
    return names


@dataclass(slots=True)
class _Saving:
    """The checkpoints of a run that is saved: the last one of the root graph is where the
    thread now ends."""

    thread: ThreadRef
    checkpoint_id: str | None = None

    @property
    def thread_id(self) -> str:
        assert self.thread.thread_id is not None
        return self.thread.thread_id


async def _events(
    graph: AnyGraph,
    graph_input: Any,
    conversation: Sequence[BaseMessage],
    run: AgentRun,
    *,
    tokens: bool,
    saving: _Saving | None = None,
    max_steps: int = 0,
) -> AsyncGenerator[Event, None]:
    tracker = _StreamTracker(run.options.client_tool_names, conversation)
    config = run.options.to_config()
    if max_steps:
        config["recursion_limit"] = step_limit(graph, max_steps)
    limit_reached: int | None = None
    modes = _TOKENS_AND_UPDATES if tokens else _UPDATES
    extra: dict[str, Any] = {}
    if saving is not None:
        modes = [*modes, "checkpoints"]
        extra["durability"] = "sync" if saving.thread.durable else DURABILITY
    name = run.options.thread.client_name if run.options.thread else None
    custom_outputs_sent = False
    parts: AsyncGenerator[Any, None] = graph.astream(  # type: ignore[assignment]
        graph_input,
        config,
        stream_mode=modes,
        subgraphs=_has_subgraphs(graph),
        version="v2",
        **extra,
    )
    try:
        async with aclosing(parts):
            async for part in parts:
                if part["type"] == "messages":
                    chunk, _metadata = part["data"]
                    if isinstance(chunk, AIMessageChunk):
                        for event in tracker.on_chunk(chunk):
                            yield event
                elif part["type"] == "updates":
                    for event in tracker.on_updates(part["data"]):
                        if isinstance(event, CustomOutputs) and name is not None:
                            event = CustomOutputs({**event.values, "thread_id": name})
                        custom_outputs_sent |= isinstance(event, CustomOutputs)
                        yield event
                    if tracker.client_tool_called and saving is None:
                        break  # the client runs its own tools: the run stops here
                elif part["type"] == "checkpoints" and saving is not None and not part["ns"]:
                    saving.checkpoint_id = checkpoint_id_of(part["data"]["config"])
                    if saving.thread.durable and saving.checkpoint_id:
                        yield StepSaved(saving.checkpoint_id)
    except GraphRecursionError as reached:
        limit_reached = _recursion_limit(config, graph, reached)
    except Exception as exc:
        error = translate(exc)
        if error is exc:
            raise
        raise error from exc
    for event in tracker.close_open_messages():
        yield event
    if limit_reached is not None:
        log.warning(
            "The run reached its step limit (%d) and was ended there; the answer is cut short",
            limit_reached,
        )
        yield StepLimitReached(limit_reached)
    if name is not None and not custom_outputs_sent:
        yield CustomOutputs({"thread_id": name})
    yield RunEnded()


def step_limit(graph: AnyGraph, max_steps: int) -> int:
    """MAX_AGENT_STEPS as LangGraph's `recursion_limit`: the supersteps (rounds of nodes) a
    run may take; a ReAct loop takes two per tool round trip (the model, then the tools).
    A graph compiled with a limit of its own (`.with_config(recursion_limit=...)`) keeps it
    when it is the smaller: its author knows its shape. Subgraphs get the same limit for
    their own loops (LangGraph counts each graph's supersteps separately)."""
    own = (graph.config or {}).get("recursion_limit")
    return min(max_steps, own) if isinstance(own, int) and own > 0 else max_steps


def _recursion_limit(
    config: Mapping[str, Any], graph: AnyGraph, reached: GraphRecursionError
) -> int:
    """The LangGraph step limit a run reached: the run's, the graph's own, else the one
    LangGraph's message names (its default is private to it); 0 when none says."""
    for source in (config, graph.config or {}):
        if isinstance(limit := source.get("recursion_limit"), int):
            return limit
    named = _RECURSION_LIMIT.search(str(reached))
    return int(named.group(1)) if named else 0


_RECURSION_LIMIT = re.compile(r"[Rr]ecursion limit of (\d+)")


# Following subgraphs' own updates (so a message a subgraph streamed is closed as soon as
# the subgraph adds it, not when the subgraph ends) costs about 15% of a small graph's run
# in LangGraph: only graphs that have subgraphs pay it. Known per graph, once.
_SUBGRAPHS: weakref.WeakKeyDictionary[AnyGraph, bool] = weakref.WeakKeyDictionary()


def _has_subgraphs(graph: AnyGraph) -> bool:
    found = _SUBGRAPHS.get(graph)
    if found is None:
        found = _SUBGRAPHS[graph] = any(True for _ in graph.get_subgraphs())
    return found


def _with_ids(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation with an id on every message (the run's own messages are told apart
    from it by id). The messages are this request's own objects: named in place, after one
    random id for the whole conversation (a random id each costs a system call: tens of
    milliseconds of the event loop for a few thousand messages)."""
    conversation = _new_id()
    for index, message in enumerate(messages):
        if message.id is None:
            message.id = f"{conversation}-{index}"
    return list(messages)


def _complete_message_events(message: BaseMessage, client_tools: frozenset[str]) -> list[Event]:
    """Events for a message that arrives whole (ainvoke, or a node that did not stream)."""
    if isinstance(message, ToolMessage):
        return [_tool_result(message)]
    if not isinstance(message, AIMessage):
        return []
    message_id = _new_id()
    events: list[Event] = [MessageStarted(message_id)]
    if reasoning := _reasoning_of(message):
        events.append(ReasoningDelta(message_id, reasoning))
    if text := _text_of(message):
        events.append(TextDelta(message_id, text))
    for index, call in enumerate(_calls_of(message)):
        client = call.name in client_tools
        events.append(ToolCallStarted(message_id, call.call_id, call.name, index, client))
        if call.arguments:
            events.append(ToolCallArgumentsDelta(message_id, call.call_id, index, call.arguments))
        events.append(
            ToolCallFinished(message_id, call.call_id, call.name, index, call.arguments, client)
        )
    events.extend(_closing_events(message, message_id))
    return events


def _closing_events(message: AIMessage, message_id: str) -> list[Event]:
    events: list[Event] = [MessageFinished(message_id, _finish_reason(message))]
    if usage := message.usage_metadata:
        events.append(
            Usage(
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            )
        )
    return events


@dataclass(slots=True)
class _OpenCall:
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _OpenMessage:
    message_id: str
    calls: dict[int, _OpenCall] = field(default_factory=dict)


class _StreamTracker:
    """Follows streamed chunks of the messages being generated and closes each message when
    its node reports the complete message in an update."""

    def __init__(self, client_tools: frozenset[str], conversation: Sequence[BaseMessage]) -> None:
        self._client_tools = client_tools
        self._open: dict[str, _OpenMessage] = {}
        # Messages whose chunks were streamed; their complete form only closes them.
        self._streamed: set[str] = set()
        # Messages already accounted for: the conversation given, those already turned into
        # events (a subgraph's update, then its parent's, may both carry one). By id, and by
        # object: LangGraph names an id-less message in place after its update was streamed.
        self._seen_ids: set[str] = {name for known in conversation for name in _names_of(known)}
        self._seen_objects: dict[int, BaseMessage] = {}
        # The model called a tool the client offered: the run ends after this update.
        self.client_tool_called = False

    def on_chunk(self, chunk: AIMessageChunk) -> Iterable[Event]:
        text = _text_of(chunk)
        reasoning = _reasoning_of(chunk)
        if not text and not chunk.tool_call_chunks and not reasoning:
            # Usage-only and end-of-stream markers carry nothing to stream; the complete
            # message in the node's update has the usage and the finish reason.
            return ()
        # Our own id for each message: providers' ids are not always unique within a run.
        key = chunk.id or ""
        events: list[Event] = []
        message = self._open.get(key)
        if message is None:
            message = self._open[key] = _OpenMessage(_new_id())
            self._streamed.add(key)
            events.append(MessageStarted(message.message_id))
        message_id = message.message_id
        if reasoning:
            events.append(ReasoningDelta(message_id, reasoning))
        if text:
            events.append(TextDelta(message_id, text))
        for fragment in chunk.tool_call_chunks:
            index = fragment.get("index")
            index = len(message.calls) if index is None else index
            call = message.calls.get(index)
            if call is None:
                name = fragment.get("name") or ""
                call = message.calls[index] = _OpenCall(fragment.get("id") or _new_id(), name)
                client = name in self._client_tools
                events.append(ToolCallStarted(message_id, call.call_id, name, index, client))
            if arguments := fragment.get("args"):
                call.arguments.append(arguments)
                events.append(ToolCallArgumentsDelta(message_id, call.call_id, index, arguments))
        return events

    def on_updates(self, updates: Mapping[str, Any]) -> Iterable[Event]:
        events: list[Event] = []
        for update in updates.values():
            if not isinstance(update, Mapping):
                continue
            for message in _as_list(update.get("messages")):
                events.extend(self._on_complete_message(message))
            if (custom_outputs := update.get("custom_outputs")) is not None:
                events.append(CustomOutputs(dict(custom_outputs)))
        return events

    def _first_sight(self, message: BaseMessage) -> bool:
        names = _names_of(message)
        if id(message) in self._seen_objects or not self._seen_ids.isdisjoint(names):
            return False
        # Held, so that the object's id cannot be reused by another message of this run.
        self._seen_objects[id(message)] = message
        self._seen_ids.update(names)
        return True

    def close_open_messages(self) -> list[Event]:
        """Close messages that were streamed but never added to the state (a model call
        whose answer a node kept to itself, or the run stopped for a client tool)."""
        events: list[Event] = []
        for opened in self._open.values():
            events.extend(self._finish_calls(opened))
            events.append(MessageFinished(opened.message_id, "stop"))
        self._open.clear()
        return events

    def _on_complete_message(self, message: BaseMessage) -> list[Event]:
        if not self._first_sight(message):
            return []
        if isinstance(message, AIMessage) and any(
            call["name"] in self._client_tools for call in message.tool_calls
        ):
            self.client_tool_called = True
        key = message.id or ""
        if not isinstance(message, AIMessage) or key not in self._streamed:
            return _complete_message_events(message, self._client_tools)
        opened = self._open.pop(key, None)
        if opened is None:
            return []
        return [*self._finish_calls(opened), *_closing_events(message, opened.message_id)]

    def _finish_calls(self, opened: _OpenMessage) -> list[Event]:
        events: list[Event] = []
        for index, call in sorted(opened.calls.items()):
            client = call.name in self._client_tools
            arguments = "".join(call.arguments)
            events.append(
                ToolCallFinished(
                    opened.message_id, call.call_id, call.name, index, arguments, client
                )
            )
        return events


@dataclass(frozen=True, slots=True)
class _Call:
    call_id: str
    name: str
    arguments: str


def _calls_of(message: AIMessage) -> list[_Call]:
    calls = [
        _Call(call.get("id") or _new_id(), call["name"], _json(call["args"]))
        for call in message.tool_calls
    ]
    calls.extend(
        _Call(call.get("id") or _new_id(), call.get("name") or "", call.get("args") or "")
        for call in message.invalid_tool_calls
    )
    return calls


def _tool_result(message: ToolMessage) -> ToolResult:
    return ToolResult(
        message_id=_new_id(),
        call_id=message.tool_call_id,
        name=message.name or "",
        output=_text_of(message),
    )


def _finish_reason(message: AIMessage) -> FinishReason:
    if message.tool_calls or message.invalid_tool_calls:
        return "tool_calls"
    reason = message.response_metadata.get("finish_reason")
    return cast(FinishReason, reason) if reason in _FINISH_REASONS else "stop"


def _text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def _reasoning_of(message: BaseMessage) -> str:
    """The model's reasoning, where the model adapters keep it (models/upstream.py)."""
    reasoning = message.additional_kwargs.get("reasoning_content")
    return reasoning if isinstance(reasoning, str) else ""


def _as_list(value: Any) -> list[BaseMessage]:
    if value is None:
        return []
    if isinstance(value, BaseMessage):
        return [value]
    return [item for item in value if isinstance(item, BaseMessage)]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _new_id() -> str:
    return uuid.uuid4().hex


def _names_of(message: BaseMessage) -> list[str]:
    """The ids a message is known by: its own, and for a tool result, its call's."""
    names = [message.id] if message.id else []
    if isinstance(message, ToolMessage):
        names.append(f"tool-result:{message.tool_call_id}")
    return names
