"""Real gunicorn with the aiohttp worker, started through the `agent-server` CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.processes import BIN, free_port, running_server


async def test_two_workers_answer_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    args = [str(BIN / "agent-server"), "--port", str(port), "--workers", "2"]
    # Slow tokens keep requests in flight so that both workers take connections.
    env = {"OFFLINE_TOKEN_DELAY_MS": "20"}
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
