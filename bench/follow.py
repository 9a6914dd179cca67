"""How long an event of a background run takes to reach a client streaming it from another
instance (which reads the store every BACKGROUND_POLL_SECONDS), beside one streaming it from
the instance that runs it (in memory, at once).

Two apps on one PostgreSQL store in one process (instance A runs, B follows), the offline
model pacing its tokens; for each event, the time it reached B's client minus the time it
reached A's. The lag is what a cross-instance follower sees; A's stream is the reference.

    make bench-follow
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from aiohttp.test_utils import TestClient, TestServer

from agent_service.app import create_app
from agent_service.settings import Settings

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


async def _arrivals(client: TestClient[Any, Any], response_id: str) -> dict[int, float]:
    """When each event (by id) reached this client."""
    seen: dict[int, float] = {}
    response = await client.get(f"/v1/responses/{response_id}?stream=true")
    async for line in response.content:
        if line.startswith(b"id: "):
            seen[int(line[4:])] = time.perf_counter()
    return seen


async def _measure(url: str, runs: int, token_ms: int, poll_s: float) -> list[float]:
    env = {
        "AGENT_TRACING": "false",
        "STATE_STORE": url,
        "OFFLINE_TOKEN_DELAY_MS": str(token_ms),
        "BACKGROUND_POLL_SECONDS": str(poll_s),
        "SSE_HEARTBEAT_SECONDS": "0",
    }
    lags: list[float] = []
    a_app = await create_app(Settings.from_env(env))
    b_app = await create_app(Settings.from_env(env))
    async with TestClient(TestServer(a_app)) as a, TestClient(TestServer(b_app)) as b:
        for _ in range(runs):
            body = {"input": "Tell me a story", "background": True}
            response_id = (await (await a.post("/v1/responses", json=body)).json())["id"]
            local, remote = await asyncio.gather(
                _arrivals(a, response_id), _arrivals(b, response_id)
            )
            # Events B's first read found already stored say nothing about the lag.
            first = min(remote.values())
            lags += [remote[n] - local[n] for n in remote if n in local and remote[n] > first]
    return lags


async def _run(runs: int, token_ms: int, poll_s: float) -> str:
    name = f"agent_follow_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        lags = await _measure(
            f"postgresql://postgres@127.0.0.1:5432/{name}", runs, token_ms, poll_s
        )
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ms = sorted(lag * 1000 for lag in lags)
    p = statistics.quantiles(ms, n=100)
    return (
        "# Cross-instance follow delay (PostgreSQL)\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M')}, {runs} background runs, a token every "
        f"{token_ms} ms, BACKGROUND_POLL_SECONDS={poll_s}, {len(ms)} events.\n\n"
        "| lag of B's stream behind A's | p50 | p90 | p99 | max |\n|---|---|---|---|---|\n"
        f"| ms | {p[49]:.0f} | {p[89]:.0f} | {p[98]:.0f} | {ms[-1]:.0f} |\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--token-ms", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.25)
    args = parser.parse_args(argv)
    try:
        report = asyncio.run(_run(args.runs, args.token_ms, args.poll))
    except psycopg.OperationalError as exc:
        sys.exit(f"PostgreSQL is needed on 127.0.0.1:5432: {exc}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "follow-latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
