"""Soak: a bounded load at a fixed rate for a set time against gunicorn with two workers.

Not a test and not a comparison: it answers "does it stay healthy?". It reports the errors,
the latency percentiles, and each worker's memory at the start and at the end (a leak shows
as growth that does not level off), sampled every `--sample` seconds along the way.

With `--tracing` every request is traced to a local SQLite store, and after the server
stopped (SIGTERM: each worker waits, within its drain, until its traces are stored) every
answered request, by its `X-Request-Id`, must have exactly one finished trace: none missing,
none twice, none left `IN_PROGRESS`.

    make soak                                   # 60 s at 50 req/s, half of them streams
    make soak SOAK_ARGS="--tracing --rate 30 --duration 300"
    uv run --group bench python -m bench.soak --rate 100 --duration 600
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.answer import Answer
from bench.procs import Server, ServerSpec, stop_all

# The load generator runs in its own process: a stalled event loop there must not look
# like a slow server.
_LOAD = [sys.executable, "-m", "bench.load"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per answer")
    parser.add_argument("--token-delay-ms", type=float, default=2.0, help="model pace")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--out", type=Path, default=None, help="write the report (JSON) here")
    parser.add_argument("--tracing", action="store_true", help="trace every request; check")
    return parser.parse_args(argv)


def run_load(url: str, *, rate: float, duration: float, stream: bool) -> dict[str, Any]:
    args = [*_LOAD, "--url", url, "--mode", "open", "--rate", str(rate)]
    args += ["--duration", str(duration), "--warmup", "0", "--timeout", "60", "--ids"]
    if stream:
        args.append("--stream")
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=duration + 120, check=True
    )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def soak(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agent-service-soak-") as folder:
        answer = Answer(
            tokens=args.tokens, long_tokens=args.tokens, token_delay_ms=args.token_delay_ms
        )
        spec = ServerSpec(
            kind="ours",
            label="soak",
            answer=answer,
            workers=args.workers,
            cores="0,1",
            tracing=args.tracing,
        )
        server = Server.start(spec, Path(folder))
        try:
            server.wait_ready()
            rss_start = server.rss_kib()
            samples: list[dict[str, Any]] = []
            stop = threading.Event()

            def sample_memory() -> None:
                started = time.monotonic()
                while not stop.wait(args.sample):
                    samples.append(
                        {"t": round(time.monotonic() - started, 1), "rss_kib": server.rss_kib()}
                    )

            sampler = threading.Thread(target=sample_memory, daemon=True)
            sampler.start()
            # Half the rate as JSON answers, half as streams, at the same time.
            reports: dict[str, dict[str, Any]] = {}

            def load(kind: str, stream: bool) -> None:
                reports[kind] = run_load(
                    server.invocations_url,
                    rate=args.rate / 2,
                    duration=args.duration,
                    stream=stream,
                )

            threads = [
                threading.Thread(target=load, args=("json", False)),
                threading.Thread(target=load, args=("stream", True)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stop.set()
            sampler.join()
            rss_end = server.rss_kib()
        finally:
            server.stop()
            stop_all()
        answered = [i for report in reports.values() for i in report["answered_ids"] or ()]
        traces = check_traces(spec.trace_db(Path(folder)), answered) if args.tracing else None
    return {
        "traces": traces,
        "rate": args.rate,
        "duration_s": args.duration,
        "workers": args.workers,
        "tokens": args.tokens,
        "errors": {kind: report["errors"] for kind, report in reports.items()},
        "error_kinds": {kind: report["error_kinds"] for kind, report in reports.items()},
        "answered": {kind: report["requests"] for kind, report in reports.items()},
        "latency_ms": {kind: report["latency_ms"] for kind, report in reports.items()},
        "ttft_ms": reports["stream"]["ttft_ms"],
        "rss_kib_start": rss_start,
        "rss_kib_end": rss_end,
        "rss_kib_samples": samples,
    }


def check_traces(store: Path, answered: list[str]) -> dict[str, Any]:
    """Each answered request's traces in the store, by request id: how many have exactly one
    finished trace, and what is wrong with the others."""
    with sqlite3.connect(store) as connection:
        rows = connection.execute(
            "SELECT m.value, t.status FROM trace_request_metadata AS m "
            "JOIN trace_info AS t ON t.request_id = m.request_id "
            "WHERE m.key = 'agent_service.request_id'"
        ).fetchall()
    states: dict[str, list[str]] = {}
    for request_id, status in rows:
        states.setdefault(request_id, []).append(status)
    found = [states.get(request_id, []) for request_id in answered]
    return {
        "answered": len(answered),
        "answered_ids_unique": len(set(answered)),
        "stored": len(rows),
        "exactly_one_finished": sum(1 for s in found if len(s) == 1 and s[0] != "IN_PROGRESS"),
        "missing": sum(1 for s in found if not s),
        "duplicated": sum(1 for s in found if len(s) > 1),
        "in_progress": sum(1 for s in found if "IN_PROGRESS" in s),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = soak(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    failed = sum(result["errors"].values())
    traces = result["traces"]
    if traces is not None:
        print(f"soak traces: {traces}", file=sys.stderr)
        if traces["exactly_one_finished"] != traces["answered"]:
            failed += 1
    growth = [
        end - start
        for start, end in zip(result["rss_kib_start"], result["rss_kib_end"], strict=False)
    ]
    print(
        f"\nsoak: {sum(result['answered'].values())} answers, {failed} errors; worker RSS "
        f"{result['rss_kib_start']} → {result['rss_kib_end']} KiB (growth {growth} KiB)",
        file=sys.stderr,
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
