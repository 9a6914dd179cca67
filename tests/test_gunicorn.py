"""Real gunicorn with the aiohttp worker, started through the `agent-server` CLI."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from mlflow.tracking import MlflowClient

from tests.processes import BIN, free_port, running_server
from tests.sse_decoder import decode


async def test_two_workers_answer_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    args = [str(BIN / "agent-server"), "--port", str(port), "--workers", "2"]
    # Slow tokens keep requests in flight so that both workers take connections.
    env = {"OFFLINE_TOKEN_DELAY_MS": "20", "AGENT_TRACING": "false"}
    with running_server(args, env, tmp_path / "server.log", port) as server:
        pids: set[int] = set()
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as client:
            for _ in range(10):
                answers = await asyncio.gather(
                    *(
                        client.post(
                            "/invocations", json={"messages": [{"role": "user", "content": "hi"}]}
                        )
                        for _ in range(16)
                    ),
                    *(client.get("/health") for _ in range(16)),
                )
                assert all(a.status_code == 200 for a in answers)
                pids |= {a.json()["pid"] for a in answers if "pid" in a.json()}
                if len(pids) == 2:
                    break
        assert len(pids) == 2, f"both workers answered: {pids}"
        exit_code = server.stop()
        log = server.log()
    assert exit_code == 0, log
    assert "Traceback" not in log
    assert log.count("Serving agent-service (agent/v1/chat) on the offline model backend") == 2
    assert "Shutting down: Master" in log


async def test_sigterm_right_after_traffic_loses_no_trace(tmp_path: Path) -> None:
    port = free_port()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        "MLFLOW_TRACKING_URI": store,
        "MLFLOW_EXPERIMENT_NAME": "gunicorn-traces",
        "AGENT_VERSION": "sigterm-test",
    }
    args = [str(BIN / "agent-server"), "--port", str(port), "--workers", "2"]
    requests = 24
    with running_server(args, env, tmp_path / "server.log", port) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/invocations",
                        json={
                            "messages": [{"role": "user", "content": f"n{i}"}],
                            "stream": i % 2 == 0,
                        },
                    )
                    for i in range(requests)
                )
            )
        assert all(a.status_code == 200 for a in answers)
        trace_ids = {a.headers["x-mlflow-trace-id"] for a in answers}
        exit_code = server.stop()
        log = server.log()
    assert exit_code == 0, log
    assert log.count("Tracing to sqlite:///") == 2, log
    store_client = MlflowClient(store)
    experiment = store_client.get_experiment_by_name("gunicorn-traces")
    assert experiment is not None
    traces = store_client.search_traces(locations=[experiment.experiment_id], max_results=100)
    assert {t.info.trace_id for t in traces} == trace_ids
    assert len(traces) == requests
    assert {t.info.state for t in traces} == {"OK"}, "every trace finished, none IN_PROGRESS"
    # Stored by the workers' wait within the drain, not left for a later export process.
    assert "not yet exported" not in log


async def _open_stream(
    client: httpx.AsyncClient, path: str, body: dict[str, object]
) -> tuple[asyncio.Task[bytes], asyncio.Event]:
    """Start a stream; the event is set once its first data frame arrived."""
    first = asyncio.Event()

    async def read() -> bytes:
        received = b""
        async with client.stream("POST", path, json={**body, "stream": True}) as response:
            assert response.status_code == 200
            async for piece in response.aiter_bytes():
                received += piece
                if b"data:" in received:
                    first.set()
        return received

    return asyncio.create_task(read()), first


async def test_sigterm_drains_streams_in_flight(tmp_path: Path) -> None:
    port = free_port()
    env = {"OFFLINE_TOKEN_DELAY_MS": "40", "DRAIN_SECONDS": "20", "AGENT_TRACING": "false"}
    args = [str(BIN / "agent-server"), "--port", str(port), "--workers", "1"]
    with running_server(args, env, tmp_path / "server.log", port) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            opened = [
                await _open_stream(
                    client, "/invocations", {"messages": [{"role": "user", "content": f"s{i}"}]}
                )
                for i in range(4)
            ]
            for _, first in opened:
                await asyncio.wait_for(first.wait(), 30)
            server.process.send_signal(signal.SIGTERM)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as fresh:
                ready = await _eventually(fresh, "/ready", 503)
                assert ready.json()["status"] == "draining"
                refused = await fresh.post(
                    "/invocations", json={"messages": [{"role": "user", "content": "late"}]}
                )
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "server_shutting_down"
            bodies = [await task for task, _ in opened]
        exit_code = server.process.wait(timeout=30)
        log = server.log()
    assert exit_code == 0, log
    for body in bodies:
        events = decode([body])
        assert events[-1].data == "[DONE]"
        assert all("error" not in e.json() for e in events[:-1]), "finished normally"
        assert events[-2].json()["choices"][0]["finish_reason"] == "stop"
    assert "Draining 4 in-flight request(s)" in log
    assert "SIGKILL" not in log
    assert "WORKER TIMEOUT" not in log


async def test_streams_still_open_after_the_drain_end_with_an_error_event(tmp_path: Path) -> None:
    port = free_port()
    env = {"OFFLINE_TOKEN_DELAY_MS": "200", "DRAIN_SECONDS": "1", "AGENT_TRACING": "false"}
    args = [str(BIN / "agent-server"), "--port", str(port), "--workers", "1"]
    with running_server(args, env, tmp_path / "server.log", port) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            chat, chat_first = await _open_stream(
                client, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}
            )
            responses, responses_first = await _open_stream(
                client, "/v1/responses", {"input": "hi"}
            )
            await asyncio.wait_for(asyncio.gather(chat_first.wait(), responses_first.wait()), 30)
            server.process.send_signal(signal.SIGTERM)
            chat_events = decode([await chat])
            response_events = decode([await responses])
        exit_code = server.process.wait(timeout=30)
        log = server.log()
    assert exit_code == 0, log
    assert chat_events[-1].data == "[DONE]"
    assert chat_events[-2].json()["error"]["code"] == "server_shutting_down"
    assert [e.event for e in response_events][-2:] == ["error", "response.failed"]
    assert response_events[-1].json()["response"]["status"] == "failed"
    assert "ending them with server_shutting_down" in log
    assert "SIGKILL" not in log
    assert "WORKER TIMEOUT" not in log


async def _eventually(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    """GET `path` until it answers `status` (the signal takes a moment to arrive)."""
    async with asyncio.timeout(10):
        while True:
            response = await client.get(path)
            if response.status_code == status:
                return response
            await asyncio.sleep(0.02)


def test_preloading_libraries_starts_no_thread() -> None:
    # The master imports them before it forks; a thread started there would not survive the
    # fork in the workers (and could hold a lock forever). Checked in a fresh interpreter.
    code = (
        "import threading; from agent_service.process.server_options import preload_libraries; "
        "preload_libraries(); import sys; "
        "print(threading.active_count(), 'agent_service.app' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["1", "False"], result.stdout + result.stderr


async def test_on_databricks_apps_the_stop_fits_in_the_platforms_15_seconds(
    tmp_path: Path,
) -> None:
    """Databricks Apps kills an app 15 s after SIGTERM: there the drain defaults to 7 s and
    gunicorn's graceful timeout to 14 s, so a stream longer than the drain still gets its
    terminal event and the worker exits by itself, before anyone kills it."""
    port = free_port()
    env = {
        # What the platform sets; the port is how it tells the app where to listen.
        "DATABRICKS_APP_NAME": "agent-on-apps",
        "DATABRICKS_APP_PORT": str(port),
        # About 16 s of tokens: longer than the drain.
        "OFFLINE_TOKEN_DELAY_MS": "400",
        "AGENT_TRACING": "false",
    }
    args = [str(BIN / "agent-server"), "--workers", "1"]
    with running_server(args, env, tmp_path / "server.log", port) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            chat, first = await _open_stream(
                client, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}
            )
            await asyncio.wait_for(first.wait(), 30)
            server.process.send_signal(signal.SIGTERM)
            events = decode([await chat])
        exit_code = server.process.wait(timeout=30)
        log = server.log()
    assert "kills an app 15s after SIGTERM: drain 7s, graceful timeout 14s" in log
    assert "Draining 1 in-flight request(s) for up to 7.0s" in log
    assert events[-1].data == "[DONE]"
    assert events[-2].json()["error"]["code"] == "server_shutting_down"
    assert exit_code == 0, log
    assert "SIGKILL" not in log
    assert "WORKER TIMEOUT" not in log
