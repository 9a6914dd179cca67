"""The bare agent: the same graph and answer, invoked in a loop in-process, no HTTP.

It is what a request costs the agent itself (LangGraph, LangChain, the offline model), the
floor any server sits on. Run by the harness as a long-lived process pinned to the server's
core; it takes one JSON command per line on stdin and answers one JSON line on stdout, so its
rounds interleave with the servers' without paying Python's start-up each time:

    {"mode": "closed", "stream": true, "long": false, "concurrency": 16, "duration": 5}
    {"mode": "open", "stream": false, "rate": 400, "duration": 5}

Non-streaming runs call `graph.ainvoke` (what our server calls); streaming runs iterate
`graph.astream(stream_mode=["messages", "updates"])` exactly as our runner does, without
converting anything.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import orjson
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.types import StreamMode

from agent_service.agents.default_graph import AgentGraph, AgentState, build_graph
from bench.answer import Answer
from bench.stats import summarize

# What our runner asks LangGraph for: token chunks and each node's update.
STREAM_MODES: list[StreamMode] = ["messages", "updates"]


def graph_input(long: bool) -> AgentState:
    messages: list[AnyMessage] = [HumanMessage("hello")]
    if long:
        messages.append(AIMessage("ok"))
    return AgentState(messages=messages)


async def one_run(graph: AgentGraph, *, stream: bool, long: bool) -> tuple[float, int, float]:
    """(latency s, streamed parts, time to first part s) of one run."""
    start = time.perf_counter()
    first = 0.0
    parts = 0
    if stream:
        async for _part in graph.astream(graph_input(long), stream_mode=STREAM_MODES, version="v2"):
            parts += 1
            if not first:
                first = time.perf_counter() - start
    else:
        await graph.ainvoke(graph_input(long))
    return time.perf_counter() - start, parts, first


async def closed(graph: AgentGraph, command: dict[str, Any]) -> dict[str, Any]:
    concurrency = int(command.get("concurrency", 16))
    stream, long = bool(command.get("stream")), bool(command.get("long"))
    warmup, duration = float(command.get("warmup", 0.5)), float(command["duration"])
    t0 = time.perf_counter()
    window_start, stop_at = t0 + warmup, t0 + warmup + duration
    samples: list[tuple[float, float, int, float]] = []  # (end, latency, parts, first)

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            latency, parts, first = await one_run(graph, stream=stream, long=long)
            samples.append((time.perf_counter(), latency, parts, first))

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = time.process_time() - cpu0
    return _report(samples, window_start, stop_at, cpu, len(samples))


async def open_rate(graph: AgentGraph, command: dict[str, Any]) -> dict[str, Any]:
    """Runs started at a fixed rate; latency from the scheduled start."""
    rate = float(command["rate"])
    stream, long = bool(command.get("stream")), bool(command.get("long"))
    warmup, duration = float(command.get("warmup", 0.5)), float(command["duration"])
    t0 = time.perf_counter()
    window_start, stop_at = t0 + warmup, t0 + warmup + duration
    samples: list[tuple[float, float, int, float]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def fire(scheduled: float) -> None:
        _latency, parts, first = await one_run(graph, stream=stream, long=long)
        end = time.perf_counter()
        samples.append((end, end - scheduled, parts, first))

    cpu0 = time.process_time()
    index = 0
    while (scheduled := t0 + index / rate) < stop_at:
        index += 1
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(fire(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    cpu = time.process_time() - cpu0
    return _report(samples, window_start, stop_at, cpu, len(samples))


def _report(
    samples: list[tuple[float, float, int, float]],
    window_start: float,
    window_end: float,
    cpu: float,
    total: int,
) -> dict[str, Any]:
    inside = [s for s in samples if window_start <= s[0] <= window_end]
    span = window_end - window_start
    return {
        "requests": len(inside),
        "errors": 0,
        "rps": len(inside) / span,
        "latency_ms": summarize(s[1] * 1000 for s in inside),
        "ttft_ms": summarize(s[3] * 1000 for s in inside if s[3]),
        "events_per_s": sum(s[2] for s in inside) / span,
        "events_per_response": (sum(s[2] for s in inside) / len(inside)) if inside else 0.0,
        "cpu_s": cpu,
        "total_ok": total,
        "cpu_per_request_ms": cpu / total * 1000 if total else None,
        "capacity_rps": total / cpu if cpu > 0 else None,
    }


async def serve() -> None:
    graph = build_graph(Answer.from_env().model())
    # Warm the graph (imports, first-run caches) before the first measured command.
    for long in (False, True):
        for stream in (False, True):
            await one_run(graph, stream=stream, long=long)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    while line := await reader.readline():
        command = orjson.loads(line)
        run = open_rate if command.get("mode") == "open" else closed
        result = await run(graph, command)
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve())
