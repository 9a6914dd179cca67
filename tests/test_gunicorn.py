"""Real gunicorn with the aiohttp worker, started through the `agent-server` CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from mlflow.tracking import MlflowClient

from tests.processes import BIN, free_port, running_server


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
