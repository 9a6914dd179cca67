"""A graph for tests that watches its own run: started, cancelled, finished, what it saw.

It is a real LangGraph graph around a real chat model; the probe only records what happens
to the run, so a test can tell that a client's disconnect really stopped the agent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from agent_service.agents.default_graph import AgentGraph, AgentState
from agent_service.run import RunOptions


@dataclass
class Probe:
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    user_tokens: list[str | None] = field(default_factory=list)


def probed_graph(model: BaseChatModel, probe: Probe) -> AgentGraph:
    async def call_model(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        probe.started.set()
        probe.user_tokens.append(RunOptions.of(config).user_token)
        try:
            reply = await model.ainvoke(state["messages"], config)
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise
        probe.finished.set()
        return {"messages": [reply]}

    graph = StateGraph(AgentState)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    return graph.compile(name="probed-agent")
