"""The graph alone holding many slow runs at once: what one open run costs in memory before
any server is involved (the floor under a server's RSS per open stream).

    BENCH_TOKENS=10 BENCH_TOKEN_DELAY_MS=2000 python -m bench.bare_hold --streams 5000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from typing import Any

import orjson

from bench.answer import Answer
from bench.bare import STREAM_MODES, graph_input
from bench.procs import rss_kib


async def hold(streams: int) -> dict[str, Any]:
    from agent_service.agents.default_graph import build_graph

    answer = Answer.from_env()
    graph = build_graph(answer.model())
    # One run first, so imports and first-use caches are not counted per run.
    fast = build_graph(Answer(tokens=answer.tokens).model())
    async for _ in fast.astream(graph_input(False), stream_mode=STREAM_MODES, version="v2"):
        pass
    gc.collect()
    before = rss_kib_self()
    peak = before
    open_runs = 0
    max_open = 0
    parts = 0

    async def one() -> None:
        nonlocal open_runs, max_open, parts
        open_runs += 1
        max_open = max(max_open, open_runs)
        try:
            async for _ in graph.astream(
                graph_input(False), stream_mode=STREAM_MODES, version="v2"
            ):
                parts += 1
        finally:
            open_runs -= 1

    started = time.perf_counter()
    tasks = [asyncio.create_task(one()) for _ in range(streams)]
    while not all(task.done() for task in tasks):
        await asyncio.sleep(0.25)
        peak = max(peak, rss_kib_self())
    await asyncio.gather(*tasks)
    return {
        "errors": 0,
        "requests": streams,
        "max_open": max_open,
        "rss_before_kib": before,
        "rss_peak_kib": peak,
        "rss_per_stream_kib": (peak - before) / max_open if max_open else None,
        "events_per_response": parts / streams,
        "seconds": time.perf_counter() - started,
    }


def rss_kib_self() -> int:
    import os

    return rss_kib(os.getpid()) or 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bare_hold", description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=5000)
    args = parser.parse_args()
    result = asyncio.run(hold(args.streams))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
