"""What the export process spends per trace writing to the local SQLite store, in process.

Real spool lines are captured first: one agent-server worker (offline model, the answer the
tracing bench uses) serves `--traces` requests with the export lock held by this process, so
its lines stay in the spool. Then the export step the export process runs (parse the lines,
build MLflow's rows, write them in batches of `BATCH_TRACES`) is timed over copies of the
store, `--rounds` times; the figure is the median CPU per trace, split into building and
writing. `--profile` prints cProfile's top functions for one round.

    uv run --frozen --no-sync python -m bench.export_cpu --traces 1000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from agent_service.observability import spool
from agent_service.observability.export.process import BATCH_TRACES
from agent_service.observability.export.sqlite_writer import SqliteWriter
from agent_service.observability.mlflow_format import from_line
from bench.answer import Answer
from bench.procs import Server, ServerSpec, stop_all

_BODY = orjson.dumps({"input": "hello"})
_JSON = {"Content-Type": "application/json"}


async def _requests(url: str, n: int) -> None:
    async with aiohttp.ClientSession() as session:

        async def some(count: int) -> None:
            for _ in range(count):
                async with session.post(url, data=_BODY, headers=_JSON) as response:
                    await response.read()
                    assert response.status == 200, response.status

        await asyncio.gather(*(some(n // 8) for _ in range(8)))


def capture(workdir: Path, traces: int) -> tuple[list[bytes], Path]:
    """Spool lines of `traces` served requests and the store their experiment lives in."""
    spec = ServerSpec(
        kind="ours",
        label="capture",
        answer=Answer(tokens=16, long_tokens=16),
        tracing=True,
        extra_env=(("TRACE_SPOOL_DIR", str(workdir / "spool")),),
    )
    spool_dir = spool.spool_dir_for(f"sqlite:///{spec.trace_db(workdir)}", str(workdir / "spool"))
    spool.prepare(spool_dir)
    lock = spool.try_lock(spool_dir / spool.EXPORTER_LOCK)
    assert lock is not None
    server = Server.start(spec, workdir)
    try:
        server.wait_ready()
        asyncio.run(_requests(f"{server.base_url}/v1/responses", traces))
        deadline = time.monotonic() + 10
        lines: list[bytes] = []
        while time.monotonic() < deadline:
            lines = [
                line
                for segment in spool.segments(spool_dir)
                for line in spool.read_lines(segment.path, 0)[0]
                if line
            ]
            if len(lines) >= traces // 8 * 8:
                break
            time.sleep(0.1)
    finally:
        server.stop(timeout=2)
        stop_all()
        os.close(lock)
    return lines, spec.trace_db(workdir)


def export_round(lines: list[bytes], store: Path) -> tuple[float, float]:
    """CPU seconds building MLflow's traces and CPU seconds writing them, for all lines."""
    writer = SqliteWriter(str(store))
    build = write = 0.0
    try:
        for start in range(0, len(lines), BATCH_TRACES):
            batch = lines[start : start + BATCH_TRACES]
            t0 = time.process_time()
            traces = [from_line(orjson.loads(raw)) for raw in batch]
            t1 = time.process_time()
            writer.write(traces)
            write += time.process_time() - t1
            build += t1 - t0
    finally:
        writer.close()
    return build, write


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines, store = capture(workdir, args.traces)
        print(f"{len(lines)} spool lines, {sum(map(len, lines)) / len(lines):.0f} bytes each")
        builds, writes = [], []
        for number in range(args.rounds):
            copy = workdir / f"round-{number}.db"
            shutil.copy(store, copy)
            if args.profile and number == 0:
                profiler = cProfile.Profile()
                profiler.enable()
            build, write = export_round(lines, copy)
            if args.profile and number == 0:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            builds.append(build / len(lines) * 1000)
            writes.append(write / len(lines) * 1000)
        build, write = statistics.median(builds), statistics.median(writes)
        print(
            f"export CPU per trace: {build + write:.3f} ms (build {build:.3f} ms, "
            f"write {write:.3f} ms); median of {args.rounds}; load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
