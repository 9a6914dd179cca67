"""The default agent: a LangGraph graph, and one example of what `AGENT` may name.

`AGENT=agent_service.agents.default_graph:build_graph` is a factory: the server calls it once
per worker with the configured chat model and tools and serves the graph it returns, as it
would serve any graph of yours (see `graph_contract.py`). It is a model → tools → model loop:

- the model sees the agent's own tools and the tools the client offered in its request;
- calls to the agent's tools run here (the `tools` node) and the model continues;
- a call to a client tool ends the run: the call goes back to the client, which executes it
  and sends the result in its next request.

Whatever the graph puts in `messages` is what the client sees; anything put in
`custom_outputs` comes back as MLflow's `custom_outputs`. The request's options (model
parameters, `custom_inputs`, `context`, client tools) are in the run config: read them with
`RunOptions.of(config)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NotRequired

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

from agent_service.run import RunOptions


class AgentState(MessagesState):
    custom_outputs: NotRequired[dict[str, Any]]


AgentGraph = CompiledStateGraph[AgentState, None, AgentState, AgentState]


def build_graph(model: BaseChatModel, tools: Sequence[BaseTool] = ()) -> AgentGraph:
    """Compile the agent graph around `model` and the agent's own `tools`."""

    async def call_model(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        options = RunOptions.of(config)
        reply = await _model_for(model, tools, options).ainvoke(state["messages"], config)
        update: dict[str, Any] = {"messages": [reply]}
        if options.custom_inputs:
            # Like the Databricks agent templates: hand custom_inputs back as custom_outputs.
            update["custom_outputs"] = dict(options.custom_inputs)
        return update

    def after_model(state: AgentState, config: RunnableConfig) -> Literal["tools", "__end__"]:
        last = state["messages"][-1]
        calls = last.tool_calls if isinstance(last, AIMessage) else []
        if not calls:
            return "__end__"
        client_tools = RunOptions.of(config).client_tool_names
        if any(call["name"] in client_tools for call in calls):
            return "__end__"  # the client executes its own tools
        return "tools"

    graph = StateGraph(AgentState)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    if tools:
        graph.add_node("tools", ToolNode(list(tools)))
        graph.add_conditional_edges("model", after_model)
        graph.add_edge("tools", "model")
    else:
        graph.add_edge("model", END)
    return graph.compile(name="agent")


def _model_for(
    model: BaseChatModel, tools: Sequence[BaseTool], options: RunOptions
) -> Runnable[LanguageModelInput, BaseMessage]:
    """The model with this request's tools and parameters bound."""
    runnable: Runnable[LanguageModelInput, BaseMessage] = model
    offered: list[Any] = [*tools, *options.client_tools]
    if offered:
        runnable = model.bind_tools(offered, **options.tool_params)
    if options.model_params:
        runnable = runnable.bind(**options.model_params)
    return runnable
