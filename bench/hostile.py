"""Hostile bodies: the longest event-loop stall one request can cause (issue 10).

    python -m bench.hostile              # about 3 minutes; writes results/hostile-latest.md
    python -m bench.hostile --repeat 5

A corpus of bodies built to hurt — the largest valid conversations, the most JSON structure
accepted, invalid items at the far end of long arrays, nesting past any limit, more structure
than a conversation needs, a gzip bomb — is sent one request at a time to one worker of
`agent-server`. Each request's stall is read from the worker's own event-loop lag histogram
(`agent_event_loop_lag_seconds` on /metrics, sampled every 10 ms): the highest bucket that
gained a sample while the request ran bounds the longest time the loop was held. Run with
tracing off and on (into a local SQLite store). Target: under 50 ms for every body up to
MAX_BODY_BYTES.

The server is not pinned to a core (its trace export process runs beside the worker, as on
any machine with more than one core); a loaded machine shows as longer stalls (the loop
waits for a CPU), so the report also gives the CPU time the worker spent per request.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.answer import Answer
from bench.procs import REPO, Server, ServerSpec, stop_all

RESULTS = REPO / "bench" / "results"
MIB = 1024 * 1024
TARGET_S = 0.05


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    build: Callable[[], bytes]
    headers: dict[str, str] = field(default_factory=dict)


def _json(value: object) -> Callable[[], bytes]:
    return lambda: orjson.dumps(value)


def _messages(count: int, last: dict[str, object] | None = None) -> list[dict[str, object]]:
    items: list[dict[str, object]] = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: how about it?"}
        for i in range(count)
    ]
    if last is not None:
        items[-1] = last
    return items


def _filled_responses_body() -> bytes:
    """The issue's body: 16 MiB of Responses input whose first item has an invalid role."""
    item = b'{"role": "user", "content": "hi"},'
    count = (16 * MIB - 100) // len(item)
    return (
        b'{"input": [{"role": "robot", "content": "hi"},'
        + item * count
        + b'{"role": "user", "content": "end"}]}'
    )


def _prose(size: int) -> str:
    sentence = "The quick brown fox jumps over the lazy dog, again and again and again. "
    return sentence * (size // len(sentence))


def _most_structure() -> bytes:
    """Just under the structure limits (100,000 containers, 250,000 commas)."""
    objects = b"{}," * 95_000
    numbers = b"0," * 150_000
    return (
        b'{"messages": [{"role": "user", "content": "hi"}], "custom_inputs": {"objects": ['
        + objects
        + b'{}], "numbers": ['
        + numbers
        + b"0]}}"
    )


def _wide_and_deep(depth: int, branches: int) -> bytes:
    """`branches` lists nested `depth` deep under custom_inputs.wide (level 3 of the body)."""
    branch = b"[" * depth + b"0" + b"]" * depth
    return (
        b'{"messages": [{"role": "user", "content": "hi"}], "custom_inputs": {"wide": ['
        + b",".join([branch] * branches)
        + b"]}}"
    )


def _gzip_bomb() -> bytes:
    """8 MiB of gzip that inflates to 8 GiB: eight members of 1 GiB of zeros each."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (64 * MIB)
    member = b"".join(compressor.compress(zeros) for _ in range(16)) + compressor.flush()
    return member * 8


def corpus() -> list[Case]:
    image = "data:image/png;base64," + "A" * (15 * MIB)
    return [
        Case(
            "valid: 2,048 messages (the most accepted)",
            "/v1/chat/completions",
            _json({"messages": _messages(2048)}),
        ),
        Case(
            "valid: 4,096 Responses input items (the most accepted)",
            "/v1/responses",
            _json({"input": _messages(4096)}),
        ),
        Case(
            "valid: a 15 MiB image as a data URL",
            "/v1/chat/completions",
            _json(
                {
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "What is in this picture?"},
                                {"type": "image_url", "image_url": {"url": image}},
                            ],
                        }
                    ]
                }
            ),
        ),
        Case(
            "valid: 15 MiB of prose in one message",
            "/v1/chat/completions",
            _json({"messages": [{"role": "user", "content": _prose(15 * MIB)}]}),
        ),
        Case(
            "valid: the most JSON structure accepted (in custom_inputs)",
            "/v1/chat/completions",
            _most_structure,
        ),
        Case(
            "valid: 1,500 branches 64 levels deep (in custom_inputs)",
            "/v1/chat/completions",
            lambda: _wide_and_deep(61, 1_500),
        ),
        Case(
            "invalid: 16 MiB of Responses input, the first role invalid",
            "/v1/responses",
            _filled_responses_body,
        ),
        Case(
            "invalid: the role of the last of 4,096 input items",
            "/v1/responses",
            _json({"input": _messages(4096, {"role": "robot", "content": "x"})}),
        ),
        Case(
            "invalid: the content type of the last of 2,048 messages",
            "/v1/chat/completions",
            _json({"messages": _messages(2048, {"role": "user", "content": 5})}),
        ),
        Case(
            "invalid: 2,049 messages", "/v1/chat/completions", _json({"messages": _messages(2049)})
        ),
        Case(
            "invalid: 16 MiB of {},{},...",
            "/v1/chat/completions",
            lambda: b'{"messages": [' + b"{}," * ((16 * MIB - 40) // 3) + b"{}]}",
        ),
        Case(
            "invalid: 16 MiB of 0,0,...",
            "/v1/chat/completions",
            lambda: b'{"messages": [], "x": [' + b"0," * ((16 * MIB - 40) // 2) + b"0]}",
        ),
        Case(
            "invalid: 16 MiB string never closed",
            "/v1/chat/completions",
            lambda: b'{"messages": "' + b"x" * (16 * MIB - 20),
        ),
        Case(
            "invalid: custom_inputs nested 1,000 deep",
            "/v1/chat/completions",
            lambda: (
                b'{"messages": [{"role": "user", "content": "hi"}], "custom_inputs": '
                b'{"k": ' + b"[" * 1000 + b"0" + b"]" * 1000 + b"}}"
            ),
        ),
        Case(
            "invalid: 65 levels after 1,500 branches 64 deep",
            "/v1/chat/completions",
            lambda: _wide_and_deep(61, 1_500)[:-3] + b", " + b"[" * 62 + b"0" + b"]" * 62 + b"]}}",
        ),
        Case(
            "invalid: 8 MiB gzip bomb (8 GiB inflated)",
            "/v1/chat/completions",
            _gzip_bomb,
            {"Content-Encoding": "gzip"},
        ),
        Case(
            "invalid: 17 MiB (over MAX_BODY_BYTES)",
            "/v1/chat/completions",
            lambda: b'{"messages": "' + b"x" * (17 * MIB) + b'"}',
        ),
    ]


def cpu_s(pid: int) -> float:
    """CPU seconds the process's threads have run, to the nanosecond (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


# --- the server's loop-lag histogram ------------------------------------------------------

_BUCKET = b"agent_event_loop_lag_seconds_bucket{"


def lag_buckets(port: int) -> dict[float, float]:
    """Cumulative sample counts of the lag histogram, by upper bound."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read()
    finally:
        connection.close()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(_BUCKET):
            bound = line.split(b'le="', 1)[1].split(b'"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(b" ", 1)[1])
    return buckets


def stall_between(before: dict[float, float], after: dict[float, float]) -> tuple[float, float]:
    """The (low, high] bucket holding the longest lag sampled between two readings."""
    bounds = sorted(after)
    new = {bound: after[bound] - before.get(bound, 0.0) for bound in bounds}
    total = new[bounds[-1]]
    low = 0.0
    for bound in bounds:
        if new[bound] >= total:
            return low, bound
        low = bound
    return low, float("inf")


@dataclass
class Outcome:
    case: str
    size: int
    status: int | None
    seconds: float
    stalls: list[tuple[float, float]]
    # CPU seconds the worker spent on each send (its threads included): a figure the
    # machine's other load does not inflate, and an upper bound of the stall.
    cpu: list[float] = field(default_factory=list)

    @property
    def worst(self) -> tuple[float, float]:
        return max(self.stalls, key=lambda stall: stall[1])


def send(port: int, case: Case, body: bytes) -> tuple[int | None, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.monotonic()
    try:
        headers = {"Content-Type": "application/json", **case.headers}
        connection.request("POST", case.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        status: int | None = response.status
    except (OSError, http.client.HTTPException):
        status = None  # refused mid-upload: the server closed the connection
    finally:
        connection.close()
    return status, time.monotonic() - started


def run(tracing: bool, repeat: int, workdir: Path) -> list[Outcome]:
    spec = ServerSpec(
        kind="ours",
        label=f"hostile-{'traced' if tracing else 'untraced'}",
        answer=Answer(tokens=16, long_tokens=16),
        tracing=tracing,
    )
    server = Server.start(spec, workdir)
    try:
        server.wait_ready()
        [worker] = server.worker_pids()
        outcomes = []
        for case in corpus():
            body = case.build()
            outcome = Outcome(case.name, len(body), None, 0.0, [])
            for _ in range(repeat):
                before = lag_buckets(server.port)
                cpu_before = cpu_s(worker)
                outcome.status, seconds = send(server.port, case, body)
                outcome.cpu.append(cpu_s(worker) - cpu_before)
                outcome.seconds = max(outcome.seconds, seconds)
                outcome.stalls.append(stall_between(before, lag_buckets(server.port)))
            outcomes.append(outcome)
            print(f"  {_row(outcome)}", flush=True)
        return outcomes
    finally:
        server.stop()


def _ms(seconds: float) -> str:
    return "∞" if seconds == float("inf") else f"{seconds * 1000:g}"


def _row(outcome: Outcome) -> str:
    low, high = outcome.worst
    verdict = "ok" if high <= TARGET_S else "OVER"
    return (
        f"| {outcome.case} | {outcome.size / MIB:.1f} | {outcome.status or 'closed'} | "
        f"{_ms(low)}-{_ms(high)} | {min(outcome.cpu) * 1000:.0f} | {verdict} |"
    )


def report(results: dict[str, list[Outcome]], repeat: int) -> str:
    lines = [
        "# Hostile bodies: the longest event-loop stall per request "
        f"({datetime.now(UTC):%Y-%m-%d})",
        "",
        f"One worker, each body sent {repeat} times; stall = the loop-lag histogram bucket that",
        "held the longest sample while the request ran (low-high, in ms), worst of the sends;",
        "worker CPU = the least CPU time the worker spent on one send (its threads included).",
        "On a loaded machine the loop also waits for a CPU: a stall can exceed the CPU it took.",
        f"Target: under {TARGET_S * 1000:g} ms.",
        f"Machine: {os.cpu_count()} cores; load average at the end: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
    ]
    for mode, outcomes in results.items():
        worst = max(high for outcome in outcomes for _, high in outcome.stalls)
        lines += [
            "",
            f"## {mode}: longest stall of any request ≤ {_ms(worst)} ms",
            "",
            "| body | MiB | status | stall (ms) | worker CPU (ms) | |",
            "|---|---|---|---|---|---|",
            *(_row(outcome) for outcome in outcomes),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.hostile", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="sends of each body (default 3)")
    parser.add_argument("--no-tracing", action="store_true", help="skip the traced run")
    args = parser.parse_args(argv)
    results: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="agent-bench-hostile-") as folder:
        try:
            for tracing in (False,) if args.no_tracing else (False, True):
                mode = "tracing on (SQLite)" if tracing else "tracing off"
                print(f"{mode}:", flush=True)
                results[mode] = run(tracing, args.repeat, Path(folder))
        finally:
            stop_all()
    text = report(results, args.repeat)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostile-latest.md").write_text(text)
    print(text)
    if any(
        high > TARGET_S for outcomes in results.values() for o in outcomes for _, high in o.stalls
    ):
        sys.exit(1)


if __name__ == "__main__":
    main()
