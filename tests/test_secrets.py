"""Secrets never leave the process: not in traces, not in /agent/info, not in the log.

The upstream's error text may quote the key we sent it; a user may put a password in the
endpoint's URL; a secret that rendered blank must not turn authentication off.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from mlflow.tracking import MlflowClient

from agent_service.keys import AGENT
from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.log_capture import server_log
from tests.processes import BIN, free_port
from tests.wire import HELLO, Client

LEAKED_KEY = "sk-live-" + "0123456789abcdef" * 2


@pytest.fixture
def tracing_env(tmp_path: Path) -> dict[str, str]:
    return {
        "AGENT_TRACING": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "TRACE_SPOOL_DIR": str(tmp_path / "spool"),
        "MLFLOW_EXPERIMENT_NAME": f"secrets-{uuid.uuid4().hex[:8]}",
        "AGENT_VERSION": "v-secrets",
    }


async def stored_trace_json(client: Client, trace_id: str) -> str:
    """The trace as the store holds it, once the export process has written it."""
    assert client.app is not None
    tracer = client.app[AGENT].tracer
    assert await tracer.flush(), "the export process stored every finished trace"
    store = MlflowClient(tracer.status.destination)

    def read() -> str:
        text: str = store.get_trace(trace_id).to_json()
        return text

    return await asyncio.to_thread(read)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_the_upstreams_error_text_is_masked_in_traces_and_logs(
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
    tracing_env: dict[str, str],
    stream: bool,
) -> None:
    fake, server = fake_openai
    fake.behaviour = Behaviour(
        status=401,
        error_body={
            "error": {
                "message": f"Incorrect API key provided: {LEAKED_KEY}.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        },
    )
    client = await make_service({**openai_env(server), **tracing_env})
    with server_log() as log:
        response = await client.post("/invocations", json={**HELLO, "stream": stream})
        assert response.status == 502
        assert LEAKED_KEY not in await response.text()
    stored = await stored_trace_json(client, response.headers["x-mlflow-trace-id"])
    assert "upstream_authentication_failed" in stored, "the failure is recorded"
    assert LEAKED_KEY not in stored
    assert LEAKED_KEY not in log.text


PASSWORD = "hunter2-" + uuid.uuid4().hex
QUERY_SECRET = "q-" + uuid.uuid4().hex


async def test_a_password_in_the_endpoint_url_is_never_shown(
    make_service: ServiceFactory,
    fake_openai: tuple[FakeOpenAI, TestServer],
    tracing_env: dict[str, str],
) -> None:
    _, server = fake_openai
    url = f"http://agent:{PASSWORD}@{server.host}:{server.port}/v1"
    with server_log() as log:
        client = await make_service({**openai_env(server), **tracing_env, "OPENAI_BASE_URL": url})
    info = await (await client.get("/agent/info")).text()
    assert f"agent:***@{server.host}" in info
    body = {**HELLO, "databricks_options": {"return_trace": True}}
    response = await client.post("/invocations", json=body)
    assert response.status == 200, await response.text()
    returned = await response.text()
    assert '"trace"' in returned
    stored = await stored_trace_json(client, response.headers["x-mlflow-trace-id"])
    assert "agent:***@" in stored, "the endpoint is in the trace metadata, masked"
    for shown in (info, returned, stored, log.text):
        assert PASSWORD not in shown
    assert "agent:***@" in log.text, "the start-up line names the endpoint, masked"


async def test_a_query_string_in_the_endpoint_url_is_never_shown(
    make_service: ServiceFactory,
) -> None:
    url = f"https://gateway.example/v1?api-key={QUERY_SECRET}&region=eu"
    with server_log() as log:
        client: Client = await make_service(
            {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "k", "OPENAI_MODEL": "m"}
        )
    info = await (await client.get("/agent/info")).json()
    assert info["model"]["endpoint"] == "https://gateway.example/v1?*** (m)"
    assert "https://gateway.example/v1?*** (m)" in log.text
    assert QUERY_SECRET not in log.text
    assert "region=eu" not in log.text


@pytest.mark.parametrize("keys", [" , ", " ", ",,"])
def test_blank_api_keys_stop_the_server_from_starting(keys: str) -> None:
    process = subprocess.Popen(
        [str(BIN / "agent-server"), "--port", str(free_port())],
        env={"PATH": str(BIN), "AGENT_API_KEYS": keys, "AGENT_TRACING": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # it started serving: the defect
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0
    assert "AGENT_API_KEYS is set but holds no key" in stderr
