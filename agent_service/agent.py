"""The agent: a LangGraph graph. This is the file to edit to make the agent your own.

The server compiles the graph once per worker with the configured chat model and calls
`graph.ainvoke` (JSON answers) or `graph.astream` (streams). Whatever the graph puts in its
`messages` is what the client sees; anything put in `custom_outputs` comes back to the client
as MLflow's `custom_outputs`. The request's options (model parameters, `custom_inputs`,
`context`) are in the run config: read them with `RunOptions.of(config)`.
"""

from __future__ import annotations

from typing import Any, NotRequired

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from .run_options import RunOptions


class AgentState(MessagesState):
    custom_outputs: NotRequired[dict[str, Any]]


AgentGraph = CompiledStateGraph[AgentState, None, AgentState, AgentState]


def build_graph(model: BaseChatModel) -> AgentGraph:
    """Compile the agent graph around `model`."""

    async def call_model(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        options = RunOptions.of(config)
        bound = model.bind(**options.model_params) if options.model_params else model
        reply = await bound.ainvoke(state["messages"], config)
        update: dict[str, Any] = {"messages": [reply]}
        if options.custom_inputs:
            # Like the Databricks agent templates: hand custom_inputs back as custom_outputs.
            update["custom_outputs"] = dict(options.custom_inputs)
        return update

    graph = StateGraph(AgentState)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    return graph.compile(name="agent")
