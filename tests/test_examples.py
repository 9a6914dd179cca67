"""Every example in examples/ served as its README says: through the three protocols,
streamed and not, and traced — each request leaves one trace, with the agent's own spans
nested under its root."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServiceFactory
from tests.processes import free_port, running_server
from tests.served import INVOCATIONS_TASK, ask_three_ways
from tests.sse_decoder import decode
from tests.traces import spans_by_name, traces_of
from tests.wire import data_frames

QUESTION = "Hello, agent"
# ask_three_ways: three protocols, each once as JSON and once streamed.
REQUESTS = 6


@pytest.fixture(autouse=True)
def _each_example_in_a_fresh_process(fresh_registrations: None) -> None:
    """Each example registers its @invoke/@stream functions once, when it is imported."""


async def test_a_graph_of_your_own_with_its_own_state_and_tools(
    make_service: ServiceFactory, tracing_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    calls = [{"name": "trip_cost", "arguments": {"nights": 3, "price_per_night": 120}}]
    script.write_text(json.dumps([{"text": "Let me add it up.", "tool_calls": calls}, {}]))
    env = {
        **INVOCATIONS_TASK,
        **tracing_env,
        "AGENT": "examples.graph_agent.agent:build",
        "OFFLINE_SCRIPT": str(script),
    }
    client = await make_service(env)
    answers = await ask_three_ways(client, "Three nights at 120 a night?")

    assert answers.chat["choices"][0]["message"]["content"].startswith("Let me add it up.")
    kinds = [item["type"] for item in answers.responses["output"]]
    assert kinds == ["message", "mcp_call", "message"]  # /v1/responses: run by the server
    assert answers.responses["output"][1]["output"] == "360.00"
    assert "trip_cost → 360.00" in answers.chat_agent["messages"][-1]["content"]

    traces = await traces_of(client, REQUESTS)
    names = spans_by_name(traces[0])
    assert {"plan", "tools", "trip_cost"} <= set(names), names


async def test_the_seed_prototype_module(
    make_service: ServiceFactory, tracing_env: dict[str, str]
) -> None:
    env = {**INVOCATIONS_TASK, **tracing_env, "AGENT": "examples.seed_agent.agent:app"}
    client = await make_service(env)
    answers = await ask_three_ways(client, QUESTION)

    for text in answers.texts:
        assert f'You said: "{QUESTION}"' in text
    # The functions yield text deltas and one finished item; clients get the full sequence.
    assert answers.response_events[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert answers.response_events.count("response.output_text.delta") > 3
    assert answers.response_events[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    traces = await traces_of(client, REQUESTS)
    assert all(trace.info.state == "OK" for trace in traces)


async def test_the_databricks_template_module(
    make_service: ServiceFactory, tracing_env: dict[str, str]
) -> None:
    env = {
        **INVOCATIONS_TASK,
        **tracing_env,
        "AGENT": "examples.template_agent.start_server:app",
    }
    client = await make_service(env)
    answers = await ask_three_ways(client, QUESTION)
    for text in answers.texts:
        assert f'You said: "{QUESTION}"' in text

    # The handler's own span and its update of the trace land in the request's trace.
    body = {
        "input": QUESTION,
        "context": {"conversation_id": "conv-42"},
    }
    response = await client.post("/v1/responses", json=body)
    assert response.status == 200
    traces = await traces_of(client, REQUESTS + 1)
    last = traces[-1]
    assert last.info.trace_metadata["mlflow.trace.session"] == "conv-42"
    spans = spans_by_name(last)
    root = next(span for span in last.data.spans if span.parent_id is None)
    assert spans["prepare"].parent_id == root.span_id
    assert spans["prepare"].attributes["acting_for_a_user"] is False


async def test_an_mlflow_responses_agent_from_a_models_from_code_file(
    make_service: ServiceFactory, tracing_env: dict[str, str]
) -> None:
    env = {**INVOCATIONS_TASK, **tracing_env, "AGENT": "examples/responses_agent/agent.py"}
    client = await make_service(env)
    answers = await ask_three_ways(client, QUESTION)
    for text in answers.texts:
        assert f'You said: "{QUESTION}"' in text
    info = await (await client.get("/agent/info")).json()
    assert info["model"]["backend"] == "agent-defined"
    traces = await traces_of(client, REQUESTS)
    assert all(trace.info.state == "OK" for trace in traces)


async def test_the_template_starts_as_its_start_script_does(tmp_path: Path) -> None:
    """`python -m ...start_server --port N`: `agent_server.run(...)` becomes agent-server,
    whose workers import the module again; /invocations speaks the functions' protocol."""
    port = free_port()
    args = [sys.executable, "-m", "examples.template_agent.start_server", "--port", str(port)]
    env = {"AGENT_TRACING": "false"}
    with running_server(args, env, tmp_path / "server.log", port) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            body = {"input": [{"role": "user", "content": QUESTION}], "stream": True}
            response = await client.post("/invocations", json=body)
            assert response.status_code == 200
            events = data_frames(decode([response.content]))
            info = (await client.get("/agent/info")).json()
        assert server.stop() == 0
        log = server.log()
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    assert info["agent_api"] == "agent/v1/responses"
    assert info["model"]["backend"] == "agent-defined"
    assert "@invoke/@stream functions (agent/v1/responses)" in log
    assert "Traceback" not in log
