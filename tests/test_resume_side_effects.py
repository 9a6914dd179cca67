"""A resumed run never calls a side-effecting tool twice: when the step left to run would
call a tool marked `metadata={"side_effects": True}`, resuming fails with a reason instead;
a tool without the mark is called again."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from agent_service.agents.default_graph import build_graph
from agent_service.agents.graph_runner import GraphAgent
from agent_service.errors import RunNotResumable
from agent_service.events import RunEnded, TextDelta, ToolResult
from agent_service.run import AgentRun, RunOptions, ThreadRef


@tool
def send_email(to: str) -> str:
    """Send an email."""
    return f"sent to {to}"


send_email.metadata = {"side_effects": True}


@tool
def add(a: int, b: int) -> str:
    """Add two numbers."""
    return str(a + b)


class FakeModel(FakeListChatModel):
    """A model that answers "done" whatever tools it is offered."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


async def interrupted_before_tools(name: str, args: dict[str, object]) -> GraphAgent:
    """A graph whose last saved step is the model's call of `name`: the tools node is next."""
    model = FakeModel(responses=["done"])
    agent = GraphAgent(build_graph(model, [send_email, add])).with_memory(InMemorySaver())
    assert agent.memory is not None
    call = {"name": name, "args": args, "id": "call_1", "type": "tool_call"}
    await agent.memory.aupdate_state(
        {"configurable": {"thread_id": "t"}},
        {"messages": [HumanMessage("go", id="h1"), AIMessage("", tool_calls=[call], id="a1")]},
        as_node="model",
    )
    return agent


def resumed_run(agent: GraphAgent) -> AgentRun:
    assert agent.memory is not None
    state = agent.memory.get_state({"configurable": {"thread_id": "t"}})
    checkpoint = state.config["configurable"]["checkpoint_id"]
    thread = ThreadRef("t", checkpoint_id=checkpoint, durable=True)
    return AgentRun([], RunOptions(request_id="r", thread=thread))


async def test_a_side_effecting_tool_is_not_called_again() -> None:
    agent = await interrupted_before_tools("send_email", {"to": "a@example.com"})
    with pytest.raises(RunNotResumable, match="send_email"):
        [event async for event in agent.resume(resumed_run(agent))]


async def test_a_tool_without_side_effects_is_called_again() -> None:
    agent = await interrupted_before_tools("add", {"a": 2, "b": 3})
    events = [event async for event in agent.resume(resumed_run(agent))]
    results = [event for event in events if isinstance(event, ToolResult)]
    assert [(r.name, r.output) for r in results] == [("add", "5")]
    # And the run goes on to its end: the model answers after the tool's result.
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "done"
    assert isinstance(events[-1], RunEnded)
