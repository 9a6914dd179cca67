"""The added cost of a stored turn over a stateless one, on SQLite and on PostgreSQL.

One agent-server worker (the production install: `make` runs it from `.venv-prod`, synced
with `--no-dev --exact`), pinned to core 0, answers non-streaming Responses requests from
closed-loop clients in this process, pinned to core 1. Per store, interleaved round by
round:

- **stateless**: `store: false`, no ids — what every request cost before state existed;
- **stored chain**: each client holds a conversation by `previous_response_id`, ten turns
  long (so the thread the agent reloads grows to 20 messages), then starts a new one.

Figures per scenario: latency p50 (client side) and server CPU per request (the worker's
process tree, from /proc), as medians over rounds; the stored/stateless ratio of each.

    make bench-state                       # ~4 minutes
    make bench-state BENCH_ARGS=--quick   # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg

from bench.answer import Answer
from bench.procs import Server, ServerSpec, stop_all
from bench.stats import percentile

RESULTS = Path(__file__).parent / "results"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
# Turns of one chain before a client starts a new one: the reloaded thread grows to 2x this.
CHAIN = 10
CONCURRENCY = 4


@dataclass(slots=True)
class Round:
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies)


async def _chain_client(
    session: aiohttp.ClientSession, url: str, stored: bool, stop_at: float, result: Round
) -> None:
    previous: str | None = None
    turn = 0
    while time.monotonic() < stop_at:
        body: dict[str, Any] = {"input": [{"role": "user", "content": "hello"}]}
        if not stored:
            body["store"] = False
        elif previous is not None:
            body["previous_response_id"] = previous
        started = time.perf_counter()
        async with session.post(url, data=orjson.dumps(body), headers=_JSON) as response:
            payload = await response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            result.errors += 1
            previous, turn = None, 0
            continue
        result.latencies.append(elapsed)
        turn += 1
        previous = orjson.loads(payload)["id"] if stored and turn < CHAIN else None
        turn = turn if previous else 0


_JSON = {"Content-Type": "application/json"}


async def _load(server: Server, stored: bool, seconds: float) -> Round:
    result = Round()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"{server.base_url}/v1/responses"
        # Warm-up: the first requests pay for imports and caches.
        warm = Round()
        await asyncio.gather(
            *(_chain_client(session, url, stored, time.monotonic() + 1.0, warm) for _ in range(2))
        )
        cpu_before = server.cpu_s()
        stop_at = time.monotonic() + seconds
        await asyncio.gather(
            *(_chain_client(session, url, stored, stop_at, result) for _ in range(CONCURRENCY))
        )
        result.cpu_s = server.cpu_s() - cpu_before
    return result


@dataclass(slots=True)
class Target:
    label: str
    store_url: str
    server: Server | None = None
    rounds: dict[str, list[Round]] = field(default_factory=lambda: {"stateless": [], "stored": []})


def _postgres_database() -> tuple[str, str] | None:
    name = f"agent_state_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable on 127.0.0.1:5432, skipped: {exc}", file=sys.stderr)
        return None
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start(target: Target, workdir: Path) -> Server:
    spec = ServerSpec(
        kind="ours",
        label=target.label,
        answer=Answer(tokens=16, long_tokens=16),
        extra_env=(("STATE_STORE", target.store_url),),
    )
    server = Server.start(spec, workdir)
    server.wait_ready()
    return server


def _summary(rounds: list[Round]) -> dict[str, float]:
    p50 = [percentile(sorted(r.latencies), 50) * 1000 for r in rounds if r.latencies]
    cpu = [r.cpu_s / r.requests * 1000 for r in rounds if r.requests]
    return {
        "p50_ms": statistics.median(p50),
        "cpu_ms": statistics.median(cpu),
        "requests": float(sum(r.requests for r in rounds)),
        "errors": float(sum(r.errors for r in rounds)),
    }


def _report(targets: list[Target], seconds: float, rounds: int) -> str:
    lines = [
        "# Stored turns vs stateless ones",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, one worker on core 0, {CONCURRENCY} closed-loop "
        f"clients on core 1, non-streaming Responses requests (16-token answers), {rounds} "
        f"rounds of {seconds:.0f} s per scenario, medians over rounds. Stored: chains of "
        f"{CHAIN} turns by previous_response_id (the agent reloads up to {2 * CHAIN} messages).",
        "",
        "| store | stateless p50 | stored p50 | added p50 | stateless CPU/req | stored CPU/req "
        "| added CPU/req | stored/stateless CPU | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        plain = _summary(target.rounds["stateless"])
        stored = _summary(target.rounds["stored"])
        lines.append(
            f"| {target.label} | {plain['p50_ms']:.2f} ms | {stored['p50_ms']:.2f} ms "
            f"| +{stored['p50_ms'] - plain['p50_ms']:.2f} ms | {plain['cpu_ms']:.2f} ms "
            f"| {stored['cpu_ms']:.2f} ms | +{stored['cpu_ms'] - plain['cpu_ms']:.2f} ms "
            f"| {stored['cpu_ms'] / plain['cpu_ms']:.2f}x "
            f"| {int(plain['errors'] + stored['errors'])} |"
        )
    return "\n".join(lines) + "\n"


async def _run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="agent-state-bench-"))
    print(f"logs and databases in {workdir}", file=sys.stderr)
    targets = [Target("sqlite", f"sqlite:///{workdir / 'state.db'}")]
    database = _postgres_database()
    if database is not None:
        targets.append(Target("postgresql", database[1]))
    try:
        for target in targets:
            target.server = _start(target, workdir)
        for round_number in range(args.rounds):
            for target in targets:
                assert target.server is not None
                for scenario in ("stateless", "stored"):
                    result = await _load(target.server, scenario == "stored", args.seconds)
                    target.rounds[scenario].append(result)
                    print(
                        f"round {round_number + 1} {target.label} {scenario}: "
                        f"{result.requests} requests, {result.errors} errors",
                        file=sys.stderr,
                    )
        return _report(targets, args.seconds, args.rounds)
    finally:
        stop_all()
        if database is not None:
            _drop(database[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 5 s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 5.0
    os.sched_setaffinity(0, {1})
    report = asyncio.run(_run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "state-latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
