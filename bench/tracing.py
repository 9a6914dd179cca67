"""What tracing every request costs, on the production install, as a same-run A/B.

Three agent-server workers (the production install: `make` runs them from `.venv-prod`,
synced with `--no-dev --exact`), each pinned to core 0, run side by side and are loaded in
turn, round by round (so a busy machine weighs on all three alike), with non-streaming
Responses requests from closed-loop clients in this process, pinned to core 1:

- **off**: `AGENT_TRACING=false`;
- **spare core**: every request traced to a local SQLite store, the export process on core 1;
- **one core**: the same with the export process on core 0, next to the worker.

Figures: requests/s and its ratio to tracing off, the worker's CPU per request (what tracing
adds there is an upper bound on the time it adds on the event loop), the export process's
CPU per trace, and, after the servers stopped (SIGTERM), the traces stored vs the requests
answered. Then, on the traced worker: what `databricks_options.return_trace` adds to the p50
of single requests, and whether 8 concurrent requests asking for it finish as fast as 8 that
do not (a lock shared by requests would serialise them).

    make bench-tracing                       # ~4 minutes
    make bench-tracing BENCH_ARGS=--quick   # ~1.5 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from bench.answer import Answer
from bench.procs import Server, ServerSpec, cmdline, cpu_s, descendants, stop_all
from bench.stats import percentile

RESULTS = Path(__file__).parent / "results"
CONCURRENCY = 8
_JSON = {"Content-Type": "application/json"}
_BODY = orjson.dumps({"input": "hello"})
_RETURN_TRACE = orjson.dumps({"input": "hello", "databricks_options": {"return_trace": True}})


@dataclass(slots=True)
class Round:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    worker_cpu_s: float = 0.0
    exporter_cpu_s: float = 0.0
    errors: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies)


@dataclass(slots=True)
class Target:
    label: str
    tracing: bool
    exporter_cpus: str = ""
    server: Server | None = None
    rounds: list[Round] = field(default_factory=list)

    def spec(self) -> ServerSpec:
        extra = (("TRACE_EXPORTER_CPUS", self.exporter_cpus),) if self.exporter_cpus else ()
        return ServerSpec(
            kind="ours",
            label=self.label,
            answer=Answer(tokens=16, long_tokens=16),
            tracing=self.tracing,
            extra_env=extra,
        )


def _exporter_cpu_s(server: Server) -> float:
    return sum(
        cpu_s(pid)
        for pid in descendants(server.process.pid)
        if "observability.export" in cmdline(pid)
    )


def _worker_cpu_s(server: Server) -> float:
    return sum(cpu_s(pid) for pid in server.worker_pids())


async def _client(
    session: aiohttp.ClientSession, url: str, body: bytes, stop_at: float, result: Round
) -> None:
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=_JSON) as response:
            await response.read()
        if response.status != 200:
            result.errors += 1
            continue
        result.latencies.append(time.perf_counter() - started)


async def _load(session: aiohttp.ClientSession, server: Server, seconds: float) -> Round:
    url = f"{server.base_url}/v1/responses"
    result = Round(seconds)
    worker, exporter = _worker_cpu_s(server), _exporter_cpu_s(server)
    stop_at = time.monotonic() + seconds
    await asyncio.gather(
        *(_client(session, url, _BODY, stop_at, result) for _ in range(CONCURRENCY))
    )
    result.worker_cpu_s = _worker_cpu_s(server) - worker
    result.exporter_cpu_s = _exporter_cpu_s(server) - exporter
    server.count_answer(result.requests)
    return result


async def _single(session: aiohttp.ClientSession, url: str, body: bytes, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        async with session.post(url, data=body, headers=_JSON) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append(time.perf_counter() - started)
    return latencies


async def _eight_at_once(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    """Seconds until the last of 8 concurrent requests has its answer."""

    async def one() -> None:
        async with session.post(url, data=body, headers=_JSON) as response:
            await response.read()
            assert response.status == 200, response.status

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(8)))
    return time.perf_counter() - started


async def _return_trace(session: aiohttp.ClientSession, server: Server, n: int) -> dict[str, float]:
    url = f"{server.base_url}/invocations"
    plain: list[float] = []
    asked: list[float] = []
    plain_8: list[float] = []
    asked_8: list[float] = []
    for _ in range(5):  # interleaved, so that load on the machine weighs on both alike
        plain += await _single(session, url, _BODY, n // 5)
        asked += await _single(session, url, _RETURN_TRACE, n // 5)
        for _ in range(4):
            plain_8.append(await _eight_at_once(session, url, _BODY))
            asked_8.append(await _eight_at_once(session, url, _RETURN_TRACE))
    server.count_answer(len(plain) + len(asked) + 8 * (len(plain_8) + len(asked_8)))
    return {
        "plain_p50_ms": percentile(sorted(plain), 50) * 1000,
        "asked_p50_ms": percentile(sorted(asked), 50) * 1000,
        "plain_8_ms": statistics.median(plain_8) * 1000,
        "asked_8_ms": statistics.median(asked_8) * 1000,
    }


def _stored(server: Server) -> int | None:
    db = server.spec.trace_db(server.workdir)
    if not db.exists():
        return None
    with sqlite3.connect(db) as connection:
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM trace_info WHERE status != 'IN_PROGRESS'"
        ).fetchone()
    return int(count)


def _install() -> str:
    """Whether this is the production install: none of the dev group's packages importable."""
    dev = [name for name in ("pytest", "numpy", "pandas") if importlib.util.find_spec(name)]
    if dev:
        return f"NOT the production install (dev packages present: {', '.join(dev)})"
    return "the production install (no dev packages)"


def _summary(rounds: list[Round]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.requests / r.seconds for r in rounds),
        "p50_ms": statistics.median(percentile(sorted(r.latencies), 50) * 1000 for r in rounds),
        "worker_ms": statistics.median(r.worker_cpu_s / r.requests * 1000 for r in rounds),
        "exporter_ms": statistics.median(r.exporter_cpu_s / r.requests * 1000 for r in rounds),
        "errors": float(sum(r.errors for r in rounds)),
    }


def _report(
    targets: list[Target],
    stored: dict[str, tuple[int | None, int]],
    returned: dict[str, float],
    args: argparse.Namespace,
) -> str:
    off = _summary(targets[0].rounds)
    load = os.getloadavg()[0]
    lines = [
        "# What tracing costs (same-run A/B, production install)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, one worker on core 0, {CONCURRENCY} closed-loop "
        f"clients on core 1, non-streaming Responses requests (16-token answers), "
        f"{args.rounds} rounds of {args.seconds:.0f} s per server, interleaved; medians over "
        f"rounds; {_install()}. Load average at "
        f"the end: {load:.1f} on {os.cpu_count()} cores (other work on the machine): read the "
        "ratios, not the absolute figures.",
        "",
        "| tracing | requests/s | vs off | p50 | worker CPU/req | added | exporter CPU/trace "
        "| traces stored / answered | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        row = _summary(target.rounds)
        count, answered = stored.get(target.label, (None, 0))
        kept = "—" if not target.tracing else f"{count} / {answered}"
        exporter = f"{row['exporter_ms']:.2f} ms" if target.tracing else "—"
        lines.append(
            f"| {target.label} | {row['rps']:.0f} | {row['rps'] / off['rps']:.0%} "
            f"| {row['p50_ms']:.1f} ms | {row['worker_ms']:.2f} ms "
            f"| +{row['worker_ms'] - off['worker_ms']:.2f} ms | {exporter} | {kept} "
            f"| {int(row['errors'])} |"
        )
    lines += [
        "",
        "`databricks_options.return_trace` (traced worker, export on the spare core), "
        "interleaved with plain requests:",
        "",
        "| | plain | return_trace | added |",
        "|---|---|---|---|",
        f"| p50 of single requests | {returned['plain_p50_ms']:.2f} ms "
        f"| {returned['asked_p50_ms']:.2f} ms "
        f"| {returned['asked_p50_ms'] - returned['plain_p50_ms']:+.2f} ms |",
        f"| last of 8 concurrent requests (median) | {returned['plain_8_ms']:.1f} ms "
        f"| {returned['asked_8_ms']:.1f} ms "
        f"| {returned['asked_8_ms'] - returned['plain_8_ms']:+.1f} ms |",
    ]
    return "\n".join(lines) + "\n"


async def _run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="agent-tracing-bench-"))
    print(f"logs and stores in {workdir}", file=sys.stderr)
    targets = [
        Target("off", tracing=False),
        Target("on, exporter on a spare core", tracing=True, exporter_cpus="1"),
        Target("on, all on one core", tracing=True, exporter_cpus="0"),
    ]
    stored: dict[str, tuple[int | None, int]] = {}
    try:
        for target in targets:
            target.server = Server.start(target.spec(), workdir)
        for target in targets:
            assert target.server is not None
            target.server.wait_ready()
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as session:
            for target in targets:  # warm-up: imports, caches, the store's schema
                assert target.server is not None
                await _load(session, target.server, 2.0)
            for number in range(args.rounds):
                for target in targets:
                    assert target.server is not None
                    result = await _load(session, target.server, args.seconds)
                    target.rounds.append(result)
                    print(
                        f"round {number + 1} {target.label}: {result.requests} requests, "
                        f"{result.errors} errors",
                        file=sys.stderr,
                    )
            spare = targets[1].server
            assert spare is not None
            returned = await _return_trace(session, spare, args.single)
        for target in targets:
            assert target.server is not None
            target.server.stop(timeout=60)
            if target.tracing:
                stored[target.label] = (_stored(target.server), target.server.answered)
        return _report(targets, stored, returned, args)
    finally:
        stop_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 6 s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--single", type=int, default=500, help="return_trace requests")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.single = 2, 6.0, 200
    os.sched_setaffinity(0, {1})
    report = asyncio.run(_run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracing-latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
