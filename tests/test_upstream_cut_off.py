"""A model answer cut off mid-stream — the endpoint's body ends cleanly after some chunks, with
no finish_reason and no [DONE] (a proxy or HTTP/1.0 hop that closed it) — is an upstream
failure for every protocol: the protocol's terminal error, an ERROR trace, a log line and the
upstream error counter; never a short answer reported as complete."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.log_capture import server_log
from tests.traces import traces_of
from tests.wire import (
    HELLO,
    HELLO_RESPONSES,
    Client,
    check_response_event,
    data_frames,
    named_frames,
    stream,
)

FakeEndpoint = tuple[FakeOpenAI, TestServer]
CUT = Behaviour(cut_after_chunks=3)  # the role chunk, "Hello", " from"; then the body ends


async def cut_service(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, task: str, **env: str
) -> Client:
    fake, server = fake_openai
    fake.behaviour = CUT
    return await make_service({**openai_env(server), "AGENT_TASK": task, **env})


async def upstream_errors(client: Client, code: str) -> float:
    metrics = await (await client.get("/metrics")).text()
    for line in metrics.splitlines():
        if line.startswith("agent_upstream_errors_total{") and f'kind="{code}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_chat_completions_stream_ends_in_an_error_not_stop(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    client = await cut_service(make_service, fake_openai, "agent/v1/chat")
    with server_log() as log:
        chunks = data_frames(await stream(client, "/v1/chat/completions", HELLO))
    *content, error = chunks
    assert error["error"]["code"] == "upstream_cut_off"
    assert error["error"]["type"] == "server_error"
    finishes = [choice["finish_reason"] for chunk in content for choice in chunk["choices"]]
    assert "stop" not in finishes, "a cut-off answer is never reported as finished"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in content)
    assert text == "Hello from"
    assert any("cut off" in line and "WARNING" in line for line in log.lines), log.text
    assert await upstream_errors(client, "upstream_cut_off") == 1


async def test_chat_agent_stream_ends_in_an_error(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    client = await cut_service(make_service, fake_openai, "agent/v2/chat")
    chunks = data_frames(await stream(client, "/invocations", HELLO))
    assert chunks[-1]["error"]["code"] == "upstream_cut_off"
    assert all(chunk.get("finish_reason") != "stop" for chunk in chunks)


@pytest.mark.parametrize("path", ["/v1/responses", "/invocations"])
async def test_responses_stream_fails(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, path: str
) -> None:
    client = await cut_service(make_service, fake_openai, "agent/v1/responses")
    events = await stream(client, path, HELLO_RESPONSES)
    payloads = data_frames(events) if path == "/invocations" else named_frames(events)
    for payload in payloads:
        check_response_event(payload)
    kinds = [payload["type"] for payload in payloads]
    assert kinds[-2:] == ["error", "response.failed"]
    assert "response.completed" not in kinds
    assert payloads[-2]["error"]["code"] == "upstream_cut_off"
    failed: dict[str, Any] = payloads[-1]["response"]
    assert failed["status"] == "failed"
    assert [item["status"] for item in failed["output"]] == ["incomplete"]


async def test_the_trace_says_error(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, tracing_env: dict[str, str]
) -> None:
    client = await cut_service(make_service, fake_openai, "agent/v1/chat", **tracing_env)
    await stream(client, "/invocations", HELLO)
    [trace] = await traces_of(client, 1)
    assert trace.info.state == "ERROR"
    root = trace.data.spans[0]
    assert root.get_attribute("agent_service.end_reason") == "failed: upstream_cut_off"


async def test_a_whole_answer_still_completes(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    """The check costs complete answers nothing: the fake's normal stream ends with a
    finish_reason and [DONE]."""
    _, server = fake_openai
    client = await make_service({**openai_env(server), "AGENT_TASK": "agent/v1/chat"})
    chunks = data_frames(await stream(client, "/v1/chat/completions", HELLO))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert await upstream_errors(client, "upstream_cut_off") == 0
