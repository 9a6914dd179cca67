"""What exporting a trace to Databricks costs: our writer against MLflow's own export.

The same recorded traces (a root, a chat model call with token usage, a failed tool) are
written to a spool and exported by the export process to a fake Databricks workspace on
127.0.0.1 (`tests/fakes/databricks_workspace.py`: MLflow's trace calls, a signed-URL upload),
once by our writer and once through MLflow's own export, alternately, `--rounds` times.
Figures: the export process's CPU per trace (its CPU minus that of a run over an empty
spool: start-up and imports), wall time, and HTTP calls per trace by kind. The fake answers
at once, so wall time is a floor: a real workspace adds its latency to every call, which
concurrency hides for our writer and not for MLflow's export.

    uv run --frozen --no-sync python -m bench.trace_export --traces 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from agent_service.observability.spool import SpoolWriter
from agent_service.observability.trace_record import SpanRecord, TraceRecord, new_trace_id
from tests.fakes.databricks_workspace import PAT, FakeWorkspace

RESULTS = Path(__file__).parent / "results"


def _recorded(number: int) -> TraceRecord:
    root = SpanRecord("agent/v1/responses", "AGENT", None)
    root.attributes["mlflow.spanInputs"] = {"input": f"question {number}"}
    model = SpanRecord("model", "CHAT_MODEL", root.span_id)
    model.attributes["mlflow.chat.tokenUsage"] = {
        "input_tokens": 30,
        "output_tokens": 16,
        "total_tokens": 46,
    }
    model.attributes["mlflow.spanOutputs"] = {"role": "assistant", "content": "word " * 16}
    model.end()
    tool = SpanRecord("calculator", "TOOL", root.span_id)
    tool.end()
    root.attributes["mlflow.spanOutputs"] = {"output_text": "word " * 16}
    root.end()
    return TraceRecord(
        new_trace_id(), "1234567", {"agent_service.request_id": f"r-{number}"}, [root, model, tool]
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _export(spool: Path, mode: str, host: str) -> tuple[float, float]:
    """CPU seconds and wall seconds of one export process run over `spool`."""
    env = {
        **os.environ,
        "DATABRICKS_HOST": host,
        "DATABRICKS_TOKEN": PAT,
        "MLFLOW_TRACKING_URI": "databricks",
    }
    for name in ("DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET"):
        env.pop(name, None)
    cpu, started = _children_cpu_s(), time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_service.observability.export",
        "--spool",
        str(spool),
        "--tracking-uri",
        "databricks",
        "--mode",
        mode,
        "--linger",
        "0",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert await process.wait() == 0
    return _children_cpu_s() - cpu, time.monotonic() - started


def _spool(folder: Path, records: list[TraceRecord]) -> Path:
    writer = SpoolWriter(folder, 1 << 30)
    for record in records:
        writer.append(record.to_line())
    writer.close()
    return folder


async def _run(args: argparse.Namespace) -> str:
    workspace = FakeWorkspace()
    runner = web.AppRunner(workspace.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host = f"http://127.0.0.1:{runner.addresses[0][1]}"
    work = Path(tempfile.mkdtemp(prefix="agent-trace-export-bench-"))
    modes = {"auto": "ours (Databricks writer)", "mlflow": "MLflow's own export"}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    wall: dict[str, list[float]] = {mode: [] for mode in modes}
    calls: dict[str, dict[str, float]] = {}
    try:
        for number in range(args.rounds):
            for mode in modes:
                empty, _ = await _export(_spool(work / f"{mode}-{number}-empty", []), mode, host)
                records = [_recorded(i) for i in range(args.traces)]
                spool = _spool(work / f"{mode}-{number}", records)
                before = dict(workspace.calls)
                spent, seconds = await _export(spool, mode, host)
                cpu[mode].append((spent - empty) / args.traces * 1000)
                wall[mode].append(seconds)
                calls[mode] = {
                    route: (count - before.get(route, 0)) / args.traces
                    for route, count in workspace.calls.items()
                    if count > before.get(route, 0)
                }
                print(f"round {number + 1} {mode}: {cpu[mode][-1]:.2f} ms/trace", file=sys.stderr)
    finally:
        await runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "# Exporting traces to Databricks (fake workspace on 127.0.0.1)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {args.traces} traces a run, {args.rounds} rounds, "
        f"medians; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| export | CPU per trace | wall per run | HTTP calls per trace |",
        "|---|---|---|---|",
    ]
    for mode, label in modes.items():
        per_call = ", ".join(f"{route} {n:.2f}" for route, n in sorted(calls[mode].items()))
        lines.append(
            f"| {label} | {statistics.median(cpu[mode]):.2f} ms "
            f"| {statistics.median(wall[mode]):.1f} s | {per_call} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    report = asyncio.run(_run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trace-export-latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
