"""MLflow tracing against a real local store (SQLite in a temporary folder), read back."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer
from mlflow.tracking import MlflowClient

from agent_service.agents.default_graph import build_graph
from agent_service.agents.tools import select_tools
from agent_service.models.offline import OfflineChatModel, ScriptedToolCall, ScriptedTurn
from agent_service.observability.spool import EXPORTER_LOCK, prepare, spool_dir_for, try_lock
from agent_service.observability.trace_bounds import MAX_VALUE_CHARS
from agent_service.observability.tracing import _in_daemon_thread
from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.sse_decoder import decode
from tests.trace_exports import differences
from tests.traces import spans_by_name, traces_of
from tests.wire import Client, check_response_event, data_frames, named_frames, normalise, stream

QUESTION = {"messages": [{"role": "user", "content": "What is 6*7?"}]}
AGENT_TOOL = (
    ScriptedTurn(
        text="Let me compute.", tool_calls=(ScriptedToolCall("calculator", {"expression": "6*7"}),)
    ),
    ScriptedTurn(text="It is 42."),
)


StartTraced = Callable[..., Awaitable[Client]]


@pytest.fixture
def traced_service(make_service: ServiceFactory, tracing_env: dict[str, str]) -> StartTraced:
    async def start(
        script: tuple[ScriptedTurn, ...] = AGENT_TOOL, token_delay_s: float = 0.0, **env: str
    ) -> Client:
        model = OfflineChatModel(script=script, token_delay_s=token_delay_s)
        graph = build_graph(model, select_tools(("calculator",)))
        return await make_service({**tracing_env, **env}, graph=graph)

    return start


async def test_a_request_leaves_one_trace_with_its_span_tree(traced_service: StartTraced) -> None:
    client = await traced_service(AGENT_TOOL)
    body = {
        **QUESTION,
        "context": {"conversation_id": "conv-7", "user_id": "ada"},
        "temperature": None,
    }
    response = await client.post("/invocations", json=body, headers={"X-Request-Id": "req-1"})
    answer = await response.json()
    [trace] = await traces_of(client, 1)
    assert response.headers["x-mlflow-trace-id"] == trace.info.trace_id
    assert trace.info.state == "OK"

    metadata = trace.info.trace_metadata
    assert metadata["agent_service.request_id"] == "req-1"
    assert metadata["agent_service.task"] == "agent/v1/chat"
    assert metadata["agent_service.model_backend"] == "agent-defined"
    assert metadata["mlflow.trace.session"] == "conv-7"
    assert metadata["mlflow.trace.user"] == "ada"
    info = await (await client.get("/agent/info")).json()
    assert metadata["mlflow.modelId"] == info["tracing"]["logged_model_id"]
    assert info["tracing"]["version"] == "agent-service-v-test"

    spans = spans_by_name(trace)
    root = spans["agent/v1/chat"]
    assert root.parent_id is None
    assert root.span_type == "AGENT"
    assert root.inputs == {k: v for k, v in body.items() if v is not None}, "no null noise"
    assert root.outputs == answer
    graph = spans["agent"]
    assert graph.parent_id == root.span_id
    nodes = [s for s in trace.data.spans if s.name in ("model", "tools")]
    assert [s.name for s in nodes] == ["model", "tools", "model"]
    assert all(s.parent_id == graph.span_id for s in nodes)
    chat_spans = [s for s in trace.data.spans if s.span_type == "CHAT_MODEL"]
    assert len(chat_spans) == 2
    usages = [s.get_attribute("mlflow.chat.tokenUsage") or {} for s in chat_spans]
    assert all(usage["total_tokens"] > 0 for usage in usages)
    assert chat_spans[0].inputs["messages"][0]["content"] == "What is 6*7?"
    tool = spans["calculator"]
    assert tool.span_type == "TOOL"
    assert tool.inputs == {"expression": "6*7"}
    assert tool.outputs == "42"
    usage = trace.info.token_usage
    assert usage is not None
    assert usage["total_tokens"] == answer["usage"]["total_tokens"]


@pytest.mark.parametrize(
    ("task", "body", "path"),
    [
        ("agent/v1/chat", QUESTION, "/invocations"),
        ("agent/v2/chat", QUESTION, "/invocations"),
        ("agent/v1/responses", {"input": "What is 6*7?"}, "/invocations"),
        ("agent/v1/responses", {"input": "What is 6*7?"}, "/v1/responses"),
    ],
)
async def test_a_streamed_answer_is_traced_whole(
    traced_service: StartTraced, task: str, body: dict[str, Any], path: str
) -> None:
    client = await traced_service(AGENT_TOOL, AGENT_TASK=task)
    answer = await (await client.post(path, json=body)).json()
    await stream(client, path, body)
    json_trace, stream_trace = await traces_of(client, 2)
    assert json_trace.data.spans[0].outputs == answer
    assert normalise(stream_trace.data.spans[0].outputs) == normalise(answer)
    assert stream_trace.info.state == "OK"


async def test_trace_id_forms_in_the_body(traced_service: StartTraced) -> None:
    client = await traced_service((), AGENT_TASK="agent/v1/responses")
    asked = {"x-mlflow-return-trace-id": "true"}
    plain = await client.post("/invocations", json={"input": "Hi"})
    assert "trace_id" not in (await plain.json())["metadata"]
    response = await client.post("/invocations", json={"input": "Hi"}, headers=asked)
    body = await response.json()
    assert body["metadata"]["trace_id"] == response.headers["x-mlflow-trace-id"]

    events = named_frames(await _stream_with(client, "/v1/responses", {"input": "Hi"}, asked))
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["metadata"]["trace_id"].startswith("tr-")
    # Also at the top of the last event, where the Databricks chatbot reads it; the typed
    # clients still accept the event.
    assert events[-1]["trace_id"] == events[-1]["response"]["metadata"]["trace_id"]
    check_response_event(events[-1])

    chat = await traced_service(())
    chat_body = await (await chat.post("/invocations", json=QUESTION, headers=asked)).json()
    assert chat_body["custom_outputs"]["trace_id"].startswith("tr-")
    chunks = data_frames(await _stream_with(chat, "/invocations", QUESTION, asked))
    assert [c["custom_outputs"]["trace_id"] for c in chunks if "custom_outputs" in c] == [
        chunks[-1]["custom_outputs"]["trace_id"]
    ]
    assert all(set(c) >= {"id", "object", "choices"} for c in chunks), "typed frames only"

    agent = await traced_service((), AGENT_TASK="agent/v2/chat")
    agent_body = await (await agent.post("/invocations", json=QUESTION, headers=asked)).json()
    assert agent_body["custom_outputs"]["trace_id"].startswith("tr-")


async def test_databricks_options_return_trace(traced_service: StartTraced) -> None:
    client = await traced_service(AGENT_TOOL)
    body = {**QUESTION, "databricks_options": {"return_trace": True}}
    answer = await (await client.post("/invocations", json=body)).json()
    trace = answer["databricks_output"]["trace"]
    assert trace["info"]["trace_id"].startswith("tr-")
    names = {span["name"] for span in trace["data"]["spans"]}
    assert {"agent/v1/chat", "agent", "model", "tools", "calculator"} <= names
    # Built in the worker without waiting for the export, it is the trace MLflow reads
    # back from the store once exported, bar what the store adds as it stores.
    [stored] = await traces_of(client, 1)
    assert (
        differences(_by_start(trace), _by_start(_without_store_additions(stored.to_dict()))) == []
    )

    chunks = data_frames(await stream(client, "/invocations", body))
    [last] = [c for c in chunks if "databricks_output" in c]
    assert last is chunks[-1]
    assert last["databricks_output"]["trace"]["info"]["state"] == "OK"


def _without_store_additions(read: dict[str, Any]) -> dict[str, Any]:
    """MLflow's SQL store adds these when it stores a trace (`translate_span_when_storing`,
    its own bookkeeping); MLflow's `Trace.to_dict()` before storing has none of them."""
    info = read["info"]
    info.pop("assessments", None)
    for tag in ("mlflow.artifactLocation", "mlflow.trace.spansLocation"):
        info["tags"].pop(tag, None)
    info["trace_metadata"].pop("mlflow.trace.infoFinalized", None)
    for span in read["data"]["spans"]:
        span["attributes"].pop("mlflow.llm.model", None)
    return read


def _by_start(trace: dict[str, Any]) -> dict[str, Any]:
    spans = sorted(trace["data"]["spans"], key=lambda span: span["start_time_unix_nano"])
    return {**trace, "data": {"spans": spans}}


async def _stream_with(
    client: Client, path: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    response = await client.post(path, json={**body, "stream": True}, headers=headers)
    assert response.headers["x-mlflow-trace-id"].startswith("tr-")
    return decode([await response.read()])


async def test_a_failed_stream_leaves_an_error_trace_with_the_partial_answer(
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
    tracing_env: dict[str, str],
) -> None:
    fake, server = fake_openai
    fake.behaviour = Behaviour(drop_after_chunks=3)
    client = await make_service({**openai_env(server), **tracing_env})
    events = await stream(client, "/invocations", QUESTION)
    assert "error" in events[-2].json()
    [trace] = await traces_of(client, 1)
    assert trace.info.state == "ERROR"
    root = trace.data.spans[0]
    assert root.get_attribute("agent_service.end_reason") == "failed: upstream_error"
    assert root.outputs["choices"][0]["message"]["content"] == "Hello from"
    assert trace.info.trace_metadata["agent_service.model_backend"] == "openai"


async def test_a_failed_json_request_leaves_an_error_trace(
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
    tracing_env: dict[str, str],
) -> None:
    fake, server = fake_openai
    fake.behaviour = Behaviour(status=500)
    client = await make_service({**openai_env(server), **tracing_env})
    response = await client.post("/invocations", json=QUESTION)
    assert response.status == 502
    assert response.headers["x-mlflow-trace-id"]
    [trace] = await traces_of(client, 1)
    assert trace.info.state == "ERROR"
    model_span = next(s for s in trace.data.spans if s.span_type == "CHAT_MODEL")
    assert model_span.status.status_code == "ERROR"


async def test_a_client_that_leaves_mid_stream_leaves_a_cancelled_trace(
    traced_service: StartTraced,
) -> None:
    client = await traced_service((), token_delay_s=0.05)
    response = await client.post("/invocations", json={**QUESTION, "stream": True})
    received = b""
    while received.count(b"data:") < 4:
        received += await response.content.readany()
    response.close()  # the client goes away mid-answer
    [trace] = await traces_of(client, 1)
    assert trace.info.state == "ERROR"
    root = trace.data.spans[0]
    assert root.get_attribute("agent_service.end_reason") == "client_disconnected"
    partial = root.outputs["choices"][0]["message"]["content"]
    assert partial.startswith("This is")
    assert len(partial) < 100, "only what was produced before the client left"


async def test_sampling_ratio_zero_traces_nothing(traced_service: StartTraced) -> None:
    client = await traced_service((), TRACE_SAMPLING_RATIO="0")
    response = await client.post("/invocations", json=QUESTION)
    assert response.status == 200
    assert "x-mlflow-trace-id" not in response.headers
    assert await traces_of(client, 0) == []


async def test_an_unusable_store_is_reported_and_the_service_still_serves(
    make_service: ServiceFactory, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_service(
        {
            "AGENT_TRACING": "true",
            "MLFLOW_TRACKING_URI": f"http://user:secret@127.0.0.1:{unused_tcp_port}",
            "TRACING_START_TIMEOUT_SECONDS": "3",
        }
    )
    response = await client.post("/invocations", json=QUESTION)
    assert response.status == 200
    assert "x-mlflow-trace-id" not in response.headers
    tracing = (await (await client.get("/agent/info")).json())["tracing"]
    assert tracing["enabled"] is True
    assert tracing["available"] is False
    assert tracing["reason"]
    assert tracing["destination"] == f"http://user:***@127.0.0.1:{unused_tcp_port}"
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and "UNAVAILABLE" in r.getMessage()
    ]
    assert len(errors) == 1
    assert "secret" not in caplog.text


async def test_a_missing_experiment_id_is_reported(
    make_service: ServiceFactory, tracking_uri: str
) -> None:
    client = await make_service(
        {
            "AGENT_TRACING": "true",
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_EXPERIMENT_ID": "987654",
        }
    )
    tracing = (await (await client.get("/agent/info")).json())["tracing"]
    assert tracing["available"] is False
    assert "987654" in tracing["reason"]
    assert (await client.post("/invocations", json=QUESTION)).status == 200


async def test_the_version_is_one_logged_model(
    traced_service: StartTraced, tracing_env: dict[str, str]
) -> None:
    first = await traced_service(())
    second = await traced_service(())
    first_info = (await (await first.get("/agent/info")).json())["tracing"]
    second_info = (await (await second.get("/agent/info")).json())["tracing"]
    assert first_info["logged_model_id"] == second_info["logged_model_id"], "found, not re-created"
    model = MlflowClient(tracing_env["MLFLOW_TRACKING_URI"]).get_logged_model(
        first_info["logged_model_id"]
    )
    assert model.name == "agent-service-v-test"
    assert model.status == "READY"


async def test_concurrent_requests_each_get_their_own_trace(traced_service: StartTraced) -> None:
    client = await traced_service(())
    answers = await asyncio.gather(
        *(
            client.post("/invocations", json=QUESTION, headers={"X-Request-Id": f"r{i}"})
            for i in range(20)
        )
    )
    assert all(a.status == 200 for a in answers)
    traces = await traces_of(client, 20)
    by_request = {t.info.trace_metadata["agent_service.request_id"]: t for t in traces}
    assert set(by_request) == {f"r{i}" for i in range(20)}
    for answer in answers:
        trace = by_request[answer.headers["X-Request-Id"]]
        assert trace.info.trace_id == answer.headers["x-mlflow-trace-id"]
        assert trace.data.spans[0].outputs == await answer.json()


async def test_traces_past_the_spool_cap_are_dropped_counted_and_loud(
    traced_service: StartTraced,
    tracing_env: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = spool_dir_for(tracing_env["MLFLOW_TRACKING_URI"], str(tmp_path))
    prepare(spool)
    # An export process that has stopped exporting: it holds the lock, writes nothing.
    stuck = try_lock(spool / EXPORTER_LOCK)
    assert stuck is not None
    try:
        client = await traced_service((), TRACE_SPOOL_DIR=str(tmp_path), TRACE_SPOOL_MAX_MB="1")
        big = {"messages": [{"role": "user", "content": "x" * 200_000}]}
        for _ in range(3):
            assert (await client.post("/invocations", json=big)).status == 200
        tracing = (await (await client.get("/agent/info")).json())["tracing"]
        assert tracing["dropped_traces"]["spool_full"] == 1
        metrics = await (await client.get("/metrics")).text()
        assert 'agent_traces_dropped_total{reason="spool_full"} 1.0' in metrics
        assert any(
            r.levelno == logging.ERROR and "DROPPED" in r.getMessage() for r in caplog.records
        )
    finally:
        os.close(stuck)
    # The export process is back: what was kept is stored.
    await traces_of(client, 2)


def test_an_abandoned_start_thread_finishing_after_the_loop_closed_is_quiet() -> None:
    """A tracking store that answers only after the worker's loop has closed: the thread
    that waited for it ends without an exception (pytest would report one as an error)."""
    release = threading.Event()
    loop = asyncio.new_event_loop()

    async def abandon() -> None:
        _in_daemon_thread(release.wait)

    before = set(threading.enumerate())
    loop.run_until_complete(abandon())
    # Other tests' abandoned threads may still be waiting for their own stores.
    [thread] = [t for t in set(threading.enumerate()) - before if t.name == "mlflow-tracing-start"]
    loop.close()
    release.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


async def test_a_huge_input_is_traced_cut_to_the_documented_size_with_a_marker(
    traced_service: StartTraced,
) -> None:
    """A 3 MB document pasted into a message: the answer is the agent's as usual, and the
    trace keeps the conversation's structure with the document cut at MAX_VALUE_CHARS and
    a marker saying how much is missing (a 15 MB copy in the spool, the store and the UI
    held the event loop for a quarter of a second)."""
    client = await traced_service((ScriptedTurn(text="A long read."),))
    document = "All work and no play makes Jack a dull boy. " * 70_000
    body = {"messages": [{"role": "user", "content": document}]}
    answer = await (await _post_large(client, body)).json()
    [trace] = await traces_of(client, 1)
    assert trace.info.state == "OK"
    spans = spans_by_name(trace)
    for recorded in (
        spans["agent/v1/chat"].inputs["messages"][0]["content"],
        next(s for s in trace.data.spans if s.span_type == "CHAT_MODEL").inputs["messages"][0][
            "content"
        ],
    ):
        kept, marker = recorded.split("… [")
        assert document.startswith(kept)
        assert MAX_VALUE_CHARS - 1_000 < len(kept) <= MAX_VALUE_CHARS
        assert marker == f"{len(document) - len(kept):,} more characters not recorded]"
    assert spans["agent/v1/chat"].outputs == answer, "small values are kept whole"

    asked = {**body, "databricks_options": {"return_trace": True}}
    returned = await (await _post_large(client, asked)).json()
    [root] = [
        span
        for span in returned["databricks_output"]["trace"]["data"]["spans"]
        if span["name"] == "agent/v1/chat"
    ]
    assert len(orjson.dumps(root)) < 2 * MAX_VALUE_CHARS, "the returned trace is cut too"


async def _post_large(client: Client, body: dict[str, Any]) -> Any:
    """POST a body of megabytes (from a file-like object: aiohttp warns about raw bytes)."""
    return await client.post(
        "/invocations",
        data=io.BytesIO(orjson.dumps(body)),
        headers={"Content-Type": "application/json"},
    )
