"""A LangGraph graph of your own, served as it is: its own state, its own tools.

    uv run agent-server --agent examples.graph_agent.agent:build

`build` is a factory: the server calls it once per worker with the chat model configured
for it (MODEL_BACKEND, DATABRICKS_SERVING_ENDPOINT, OPENAI_*; the offline model when none
is) — a graph that builds its own model can be named directly instead (`...:graph`).
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

INSTRUCTIONS = "You help travellers plan trips. Use the tools for sums and packing advice."
# The graph's own guard against a model that never stops calling tools.
MAX_MODEL_CALLS = 6


class TripState(MessagesState):
    """`messages` is what the server needs; `model_calls` is this graph's own business."""

    model_calls: int


@tool
def trip_cost(nights: int, price_per_night: float, travellers: int = 1) -> str:
    """The cost of the stay: nights x price per night x travellers."""
    return f"{nights * price_per_night * travellers:.2f}"


@tool
def packing_list(climate: str) -> str:
    """What to pack for a climate: hot, cold or rainy."""
    lists = {
        "hot": "sunscreen, hat, light clothes",
        "cold": "coat, gloves, warm layers",
        "rainy": "umbrella, waterproof shoes, rain jacket",
    }
    return lists.get(climate.lower(), "layers for changeable weather")


TOOLS = [trip_cost, packing_list]


def build(model: BaseChatModel) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The trip planner around `model`: model → tools → model, at most MAX_MODEL_CALLS."""
    planner = model.bind_tools(TOOLS)

    async def plan(state: TripState, config: RunnableConfig) -> dict[str, Any]:
        messages = [SystemMessage(INSTRUCTIONS), *state["messages"]]
        reply = await planner.ainvoke(messages, config)
        return {"messages": [reply], "model_calls": state.get("model_calls", 0) + 1}

    def next_step(state: TripState) -> Literal["tools", "__end__"]:
        last = state["messages"][-1]
        wants_tools = isinstance(last, AIMessage) and bool(last.tool_calls)
        return "tools" if wants_tools and state["model_calls"] < MAX_MODEL_CALLS else "__end__"

    graph = StateGraph(TripState)
    graph.add_node("plan", plan)
    graph.add_node("tools", ToolNode(TOOLS))
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", next_step)
    graph.add_edge("tools", "plan")
    return graph.compile(name="trip-planner")
