"""Any LangGraph graph whose state has `messages` is served, not only the default one: a
prebuilt ReAct agent, a multi-node graph with its own state and a subgraph, a graph that
would run the client's tools itself. What a graph lacks is said at start-up."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from typing_extensions import TypedDict

from agent_service.agents.base import AgentLoadError
from agent_service.agents.graph_runner import GraphAgent
from agent_service.models.offline import OfflineChatModel, ScriptedToolCall, ScriptedTurn
from agent_service.run import RunOptions
from tests.conftest import ServiceFactory
from tests.served import INVOCATIONS_TASK, ask_three_ways

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
async def test_a_prebuilt_react_agent_with_its_own_tools(make_service: ServiceFactory) -> None:
    from langgraph.prebuilt import create_react_agent

    model = OfflineChatModel(
        script=(
            ScriptedTurn("Let me multiply.", (ScriptedToolCall("multiply", {"a": 6, "b": 7}),)),
            ScriptedTurn("It is 42."),
        )
    )
    client = await make_service(INVOCATIONS_TASK, agent=create_react_agent(model, [multiply]))
    answers = await ask_three_ways(client, "What is 6 times 7?")

    assert answers.chat["choices"][0]["message"]["content"] == "Let me multiply.\n\nIt is 42."
    calling, result, final = answers.chat_agent["messages"]
    assert calling["tool_calls"][0]["function"]["name"] == "multiply"
    assert result["role"] == "tool"
    assert result["content"] == "42"
    assert final["content"] == "It is 42."
    # /v1/responses shows the agent's own call as an mcp_call item, already run.
    kinds = [item["type"] for item in answers.responses["output"]]
    assert kinds == ["message", "mcp_call", "message"]
    # The model's tokens were streamed as they came, not sent whole at the end.
    assert answers.response_events.count("response.output_text.delta") > 4


class DeskState(MessagesState):
    """A graph's own state next to `messages`: the server neither reads nor needs it."""

    topic: str


def research_desk() -> Any:
    classifier = OfflineChatModel(script=(ScriptedTurn("weather"),)).with_config(
        tags=["nostream"]  # LangGraph's convention: these tokens are not for the client
    )
    writer = OfflineChatModel(script=(ScriptedTurn("Sunny all week in Paris."),))

    async def classify(state: DeskState, config: RunnableConfig) -> dict[str, Any]:
        reply = await classifier.ainvoke(state["messages"], config)
        return {"topic": reply.text}

    async def write(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        return {"messages": [await writer.ainvoke(state["messages"], config)]}

    answer = StateGraph(MessagesState)
    answer.add_node("write", write)
    answer.add_edge(START, "write")
    answer.add_edge("write", END)

    def sign(state: DeskState) -> dict[str, Any]:
        # A message a node makes itself, without an id.
        return {"messages": [AIMessage(f"— the {state['topic']} desk")]}

    desk = StateGraph(DeskState)
    desk.add_node("classify", classify)
    desk.add_node("answer", answer.compile(name="answer"))
    desk.add_node("sign", sign)
    desk.add_edge(START, "classify")
    desk.add_edge("classify", "answer")
    desk.add_edge("answer", "sign")
    desk.add_edge("sign", END)
    return desk.compile(name="research-desk")


async def test_a_multi_node_graph_with_its_own_state_and_a_subgraph(
    make_service: ServiceFactory,
) -> None:
    client = await make_service(INVOCATIONS_TASK, agent=research_desk())
    answers = await ask_three_ways(client, "Weather in Paris?")

    # Each message once, in order, although the subgraph hands its whole state back; the
    # classifier's tokens (tagged nostream) reach no client.
    assert answers.chat["choices"][0]["message"]["content"] == (
        "Sunny all week in Paris.\n\n— the weather desk"
    )
    assert [m["content"] for m in answers.chat_agent["messages"]] == [
        "Sunny all week in Paris.",
        "— the weather desk",
    ]
    texts = [
        item["content"][0]["text"]
        for item in answers.responses["output"]
        if item["type"] == "message"
    ]
    assert texts == ["Sunny all week in Paris.", "— the weather desk"]


def greedy_tool_runner(model_calls: list[int]) -> Any:
    """A graph that sends every tool call to its own tool node — the client's included."""

    async def call_model(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        model_calls.append(1)
        model = OfflineChatModel(
            script=(
                ScriptedTurn(tool_calls=(ScriptedToolCall("get_weather", {"city": "Paris"}),)),
                ScriptedTurn("I could not get the weather."),
            )
        ).bind_tools([dict(tool) for tool in RunOptions.of(config).client_tools])
        return {"messages": [await model.ainvoke(state["messages"], config)]}

    def route(state: MessagesState) -> Literal["tools", "__end__"]:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else "__end__"

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([multiply]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route)
    graph.add_edge("tools", "model")
    return graph.compile(name="greedy")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_client_tool_call_stops_any_graph(
    make_service: ServiceFactory, streamed: bool
) -> None:
    model_calls: list[int] = []
    client = await make_service(agent=greedy_tool_runner(model_calls))
    body = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "stream": streamed,
    }
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 200
    text = await response.text()
    assert '"get_weather"' in text
    assert '"finish_reason":"tool_calls"' in text.replace(" ", "")
    assert "I could not get the weather" not in text
    assert model_calls == [1], "the run stopped at the client's tool call"


class NoMessages(TypedDict):
    question: str
    answer: str


def test_a_graph_without_messages_is_refused_at_start_up_saying_why() -> None:
    graph = StateGraph(NoMessages)
    graph.add_node("answer", lambda state: {"answer": "42"})
    graph.add_edge(START, "answer")
    with pytest.raises(AgentLoadError, match="takes no 'messages' in its input"):
        GraphAgent(graph.compile(name="quiz"))


def test_a_graph_with_a_checkpointer_is_refused_at_start_up_saying_why() -> None:
    graph = StateGraph(MessagesState)
    graph.add_node("noop", lambda state: {})
    graph.add_edge(START, "noop")
    with pytest.raises(AgentLoadError, match="compiled with a checkpointer"):
        GraphAgent(graph.compile(checkpointer=InMemorySaver()))


async def test_a_langchain_create_agent_graph(make_service: ServiceFactory) -> None:
    model = OfflineChatModel(
        script=(
            ScriptedTurn("Let me multiply.", (ScriptedToolCall("multiply", {"a": 6, "b": 7}),)),
            ScriptedTurn("It is 42."),
        )
    )
    graph = create_agent(model=model, tools=[multiply])
    client = await make_service(INVOCATIONS_TASK, agent=graph)
    answers = await ask_three_ways(client, "What is 6 times 7?")
    assert answers.chat["choices"][0]["message"]["content"] == "Let me multiply.\n\nIt is 42."
    # /v1/responses shows the agent's own call as an mcp_call item, already run.
    kinds = [item["type"] for item in answers.responses["output"]]
    assert kinds == ["message", "mcp_call", "message"]
