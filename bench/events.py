"""What keeping a stream costs, and how fast a kept stream is read again.

In one process (the service on aiohttp's test server, the client beside it), the offline
model scripted to a 256-token answer, streamed Responses requests, side by side:

- CPU per streamed event with the stream kept (`store: true`: events written in batches) and
  not kept (`store: false`), on SQLite and on PostgreSQL;
- CPU per event of a background run (`background: true`, its stream followed live on the
  same worker: events in memory for the follower, in batches to the store);
- the replay rate of a kept stream (`GET /v1/responses/{id}?stream=true`), events per second.

CPU is the process's (client and server together), so the difference is what keeping adds.

    make bench-events
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
from aiohttp.test_utils import TestClient, TestServer

from agent_service.app import create_app
from agent_service.settings import Settings
from bench.answer import Answer

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
TOKENS = 256


async def _stream(client: TestClient[Any, Any], store: bool) -> tuple[int, str]:
    body = {"input": [{"role": "user", "content": "hello"}], "stream": True, "store": store}
    response = await client.post("/v1/responses", json=body)
    raw = await response.read()
    events = raw.count(b"\ndata: ")
    first = raw.split(b"data: ", 1)[1].split(b"\n", 1)[0]
    return events, orjson.loads(first)["response"]["id"]


async def _background(client: TestClient[Any, Any]) -> tuple[int, str]:
    body = {"input": [{"role": "user", "content": "hello"}], "background": True}
    response_id = (await (await client.post("/v1/responses", json=body)).json())["id"]
    raw = await (await client.get(f"/v1/responses/{response_id}?stream=true")).read()
    return raw.count(b"\ndata: "), response_id


async def _measure(store_url: str, workdir: Path, requests: int) -> dict[str, float]:
    script = Answer(tokens=TOKENS, long_tokens=TOKENS).write_script(workdir / "script.json")
    env = {"AGENT_TRACING": "false", "STATE_STORE": store_url, "OFFLINE_SCRIPT": str(script)}
    app = await create_app(Settings.from_env(env))
    figures: dict[str, float] = {}
    async with TestClient(TestServer(app)) as client:
        for store in (False, True):
            await _stream(client, store)  # warm-up
        for store in (False, True, False, True):
            cpu, events = time.process_time(), 0
            for _ in range(requests):
                events += (await _stream(client, store))[0]
            key = "kept" if store else "not kept"
            figures[key] = min(
                figures.get(key, float("inf")), (time.process_time() - cpu) / events * 1e6
            )
        await _background(client)  # warm-up
        for _ in range(2):
            cpu, events = time.process_time(), 0
            for _ in range(requests):
                events += (await _background(client))[0]
            figures["background"] = min(
                figures.get("background", float("inf")),
                (time.process_time() - cpu) / events * 1e6,
            )
        _, response_id = await _stream(client, True)
        started, replayed = time.perf_counter(), 0
        for _ in range(requests):
            raw = await (await client.get(f"/v1/responses/{response_id}?stream=true")).read()
            replayed += raw.count(b"\ndata: ")
        figures["replay events/s"] = replayed / (time.perf_counter() - started)
    return figures


async def _run(requests: int) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="agent-events-bench-"))
    stores = {"sqlite": f"sqlite:///{workdir / 'state.db'}"}
    name = f"agent_events_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        stores["postgresql"] = f"postgresql://postgres@127.0.0.1:5432/{name}"
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
    lines = [
        "# Keeping streams: cost per event, replay rate",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, one process (service and client), {TOKENS}-token "
        f"streamed Responses answers, {requests} requests per figure, best of two.",
        "",
        "| store | CPU per event, not kept | kept | added | background run, followed | replay |",
        "|---|---|---|---|---|---|",
    ]
    try:
        for label, url in stores.items():
            f = await _measure(url, workdir, requests)
            lines.append(
                f"| {label} | {f['not kept']:.1f} µs | {f['kept']:.1f} µs "
                f"| +{f['kept'] - f['not kept']:.1f} µs | {f['background']:.1f} µs "
                f"| {f['replay events/s']:,.0f} events/s |"
            )
    finally:
        if "postgresql" in stores:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args(argv)
    report = asyncio.run(_run(args.requests))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "events-latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
