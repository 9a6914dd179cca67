"""Run the side-by-side benchmark and write the report.

    python -m bench.run            # the full run (~25 minutes)
    python -m bench.run --quick    # a short run (~5 minutes)

Writes bench/results/<date>-results.md and .png, copies them to latest.md / latest.png, keeps
every raw figure in bench/results/raw/<date>.json, and prints the report.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from bench.answer import Answer
from bench.procs import REPO, core_busy_s, stop_all
from bench.report import Results, chart, markdown
from bench.scenarios import FULL, QUICK, Bench, Plan, Record

RESULTS = REPO / "bench" / "results"
PHASES = ("one-worker", "two-workers", "slow-streams", "cold-start")
PACKAGES = (
    "aiohttp",
    "gunicorn",
    "langgraph",
    "langchain-core",
    "mlflow-skinny",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown memory"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"Linux {platform.release()}",
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def commit() -> str:
    # Read-only: the commit the tree is at (uncommitted changes are not named here).
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=8", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def check_machine() -> list[str]:
    """Warnings about conditions that make figures unreliable."""
    warnings = []
    if (os.cpu_count() or 1) < 2:
        warnings.append("Fewer than 2 cores: server and load generator share one.")
    if shutil.which("taskset") is None:
        raise SystemExit("bench: taskset (util-linux) is needed to pin processes to cores")
    # One second of both cores' busy time: what else is running right now.
    before = [core_busy_s(core) for core in (0, 1)]
    time.sleep(1.0)
    busy = max(core_busy_s(core) - start for core, start in enumerate(before))
    if busy > 0.2:
        warnings.append(
            f"The machine was not idle at the start (a core {busy:.0%} busy with other work); "
            "see the measurement-quality line for how much that mattered."
        )
    return warnings


def load_raw(path: Path) -> Results:
    """The results of an earlier run, from its raw JSON."""
    raw = orjson.loads(path.read_bytes())
    fields = dict(raw["plan"])
    fields["answer"] = Answer(**fields["answer"])
    fields["slow_answer"] = Answer(**fields["slow_answer"])
    records = [Record(r["scenario"], r["target"], r["round"], r["figures"]) for r in raw["records"]]
    return Results(records, Plan(**fields), raw["meta"], raw["notes"])


def _stop(signum: int, _frame: FrameType | None) -> None:
    stop_all()
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~5 minutes)")
    parser.add_argument(
        "--only", action="append", choices=PHASES, help="run only this phase (repeatable)"
    )
    parser.add_argument("--rounds", type=int, help="override the plan's rounds")
    parser.add_argument("--duration", type=float, help="override the measured seconds per run")
    parser.add_argument(
        "--slow-streams", type=int, help="override the number of concurrent slow streams"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--from-raw", type=Path, help="only render the report again from a raw JSON file"
    )
    args = parser.parse_args(argv)
    if args.from_raw:
        results = load_raw(args.from_raw)
        chart(results, args.out / "latest.png")
        (args.out / "latest.md").write_text(markdown(results, chart_name="latest.png") + "\n")
        print(markdown(results, chart_name="latest.png"))
        return

    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds, cold_rounds=args.rounds)
    if args.duration:
        plan = replace(plan, duration_s=args.duration)
    if args.slow_streams:
        plan = replace(plan, slow_streams=args.slow_streams)

    # Every server is stopped however the run ends.
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    warnings = check_machine()
    command = "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    print(f"bench: {plan.name} run; servers' logs and trace stores in {workdir}", flush=True)

    bench = Bench(plan, workdir, log=lambda line: print(line, flush=True))
    bench.notes.extend(warnings)
    t0 = time.monotonic()
    bench.run(set(args.only) if args.only else None)
    elapsed = time.monotonic() - t0

    meta: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command.strip(),
        "elapsed_s": elapsed,
        "commit": commit(),
        "versions": versions(),
        "workdir": str(workdir),
        **machine(),
    }
    results = Results(bench.records, plan, meta, bench.notes)
    stamp = started.strftime("%Y-%m-%d-%H%M")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "raw").mkdir(exist_ok=True)
    raw = {
        "meta": meta,
        "plan": asdict(plan),
        "notes": bench.notes,
        "records": [record.to_json() for record in bench.records],
    }
    (args.out / "raw" / f"{stamp}.json").write_bytes(orjson.dumps(raw, option=orjson.OPT_INDENT_2))
    png = args.out / f"{stamp}-results.png"
    chart(results, png)
    report = markdown(results, chart_name=png.name)
    (args.out / f"{stamp}-results.md").write_text(report + "\n")
    shutil.copyfile(png, args.out / "latest.png")
    (args.out / "latest.md").write_text(markdown(results, chart_name="latest.png") + "\n")
    print("\n" + report)
    print(f"\nbench: wrote {args.out / f'{stamp}-results.md'} and latest.md / latest.png")


if __name__ == "__main__":
    main()
