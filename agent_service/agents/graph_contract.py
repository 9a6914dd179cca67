"""What the server needs from a LangGraph graph — the whole list, checked once at start-up.

1. A compiled graph (`StateGraph(...).compile()`, `create_agent(...)`, `create_react_agent(...)`).
2. A `messages` channel in its input and its output: the server passes the conversation as
   `{"messages": [...]}` (LangChain messages, the client's history included) and reads the
   answer from the messages the run adds. Any other state of the graph is its own.
3. No checkpointer: each request carries the whole conversation, so a graph that also kept it
   would see every turn twice (and a checkpointer needs a `thread_id` the server does not send).

Everything else is the graph's own business: its nodes, subgraphs, state and reducers. The
runner (`graph_runner.py`) streams the model's tokens as they come (LangGraph's "messages"
stream mode, subgraphs included) and takes every message a node adds ("updates") as part of
the answer: assistant text and tool calls, the results of the agent's own tools. A model call
whose tokens the client must not see (a router, a summariser) is tagged `nostream`, LangGraph's
own convention. A `custom_outputs` key in an update comes back as MLflow's `custom_outputs`.
When the model calls a tool the client offered (`RunOptions.of(config).client_tools`), the run
stops there and the call goes back to the client, whatever the graph would do next.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.pregel import Pregel

from agent_service.agents.base import AgentLoadError

MESSAGES = "messages"

AnyGraph = Pregel[Any, Any, Any, Any]


def check_graph(graph: AnyGraph) -> AnyGraph:
    """`graph` if the server can serve it; else `AgentLoadError` naming what is missing."""
    name = f"the graph {graph.name!r}"
    inputs = _input_keys(graph)
    if MESSAGES not in inputs:
        raise AgentLoadError(
            f"{name} takes no 'messages' in its input ({', '.join(sorted(inputs))}); the "
            "server passes the conversation as {'messages': [...]}: give the graph's state a "
            "messages channel (MessagesState, or `messages: Annotated[list, add_messages]`)"
        )
    if MESSAGES not in _channels(graph.output_channels):
        raise AgentLoadError(
            f"{name} has no 'messages' in its output ({_listed(graph.output_channels)}); the "
            "answer is read from the messages the run adds"
        )
    if graph.checkpointer not in (None, False):
        raise AgentLoadError(
            f"{name} was compiled with a checkpointer; each request carries the whole "
            "conversation, so compile it without one (`graph.compile()`)"
        )
    return graph


def _input_keys(graph: AnyGraph) -> set[str]:
    """What the graph takes as input: its input schema's keys (a StateGraph's entry channel
    is an internal one), else its input channels."""
    if isinstance(graph, CompiledStateGraph):
        return set(graph.builder.schemas[graph.builder.input_schema])
    return _channels(graph.input_channels)


def _channels(channels: str | Any) -> set[str]:
    return {channels} if isinstance(channels, str) else set(channels)


def _listed(channels: str | Any) -> str:
    return ", ".join(sorted(_channels(channels))) or "nothing"
