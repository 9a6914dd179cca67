"""The scenarios: which servers run, which load they get, in which order, what is recorded.

Every measured run is one `Record` (scenario, target, round, figures). Targets of one
scenario run interleaved, round by round (ours, baseline, ..., bare, then again), so a drift
of the machine hits all of them alike; the report takes medians and ranges over rounds.

Placement: each server (and the bare loop) is pinned to core 0, the load generator to core 1,
so the two never compete for a core. The two-worker scenarios are the exception: two workers
need both cores, so the load generator shares them (same for both servers; absolute numbers
there are lower bounds).
"""

from __future__ import annotations

import functools
import math
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from bench.answer import Answer
from bench.procs import (
    REPO,
    Kind,
    LogWatcher,
    Server,
    ServerSpec,
    answer_once,
    core_busy_s,
    cpu_s,
    process_env,
    stop_all,
)

SERVER_CORE = "0"
# Above this share of the server's core used by other processes, a run is repeated.
FOREIGN_LIMIT = 0.15
LOAD_CORE = "1"
BOTH_CORES = "0,1"


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    rounds: int
    duration_s: float  # measured seconds of one load run
    load_warmup_s: float  # unmeasured seconds at the start of each load run
    server_warmup_s: float  # load on each server before its first measured round
    concurrency: int
    answer: Answer
    slow_streams: int
    slow_rounds: int
    # Slow runs the bare graph holds at once (its memory per run hardly depends on how many).
    bare_hold_streams: int
    slow_answer: Answer
    slow_heartbeat_s: float
    ramp_rate: float
    cold_rounds: int
    cold_no_pyc: bool
    # Longest wait for a server to finish its work after a run (trace export).
    drain_limit_s: float
    # A run that exceeds this stops starting new scenarios (what ran is still reported).
    budget_s: float


QUICK = Plan(
    name="quick",
    rounds=2,
    duration_s=2.0,
    load_warmup_s=0.4,
    server_warmup_s=1.0,
    concurrency=16,
    answer=Answer(tokens=64, long_tokens=256),
    slow_streams=5000,
    slow_rounds=1,
    bare_hold_streams=1000,
    # 10 tokens, 2 s apart: a stream lasts 20 s plus its wait for the first token, longer
    # than the ~10 s it takes to open 5,000, so all are open at once; the 1 s heartbeat fires
    # in every gap between tokens. The long turn is one token: a warm-up request takes 2 s.
    slow_answer=Answer(tokens=10, long_tokens=1, token_delay_ms=2000),
    # The start without bytecode cache: only in the full run.
    cold_no_pyc=False,
    slow_heartbeat_s=1.0,
    ramp_rate=500.0,
    cold_rounds=1,
    drain_limit_s=90.0,
    # Planned at ~5.5 minutes; this is the bound, not the aim.
    budget_s=9 * 60,
)

FULL = replace(
    QUICK,
    name="full",
    rounds=4,
    duration_s=8.0,
    load_warmup_s=1.0,
    server_warmup_s=5.0,
    slow_rounds=2,
    bare_hold_streams=5000,
    cold_no_pyc=True,
    cold_rounds=4,
    # Planned at ~22 minutes.
    budget_s=32 * 60,
)


@dataclass(slots=True)
class Record:
    scenario: str
    target: str
    round: int
    figures: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "target": self.target,
            "round": self.round,
            "figures": self.figures,
        }


@dataclass
class Bench:
    plan: Plan
    workdir: Path
    log: Callable[[str], None]
    records: list[Record] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _bare: subprocess.Popen[bytes] | None = None

    # --- the whole run -----------------------------------------------------------------

    def run(self, only: set[str] | None = None) -> None:
        phases: list[tuple[str, Callable[[], None]]] = [
            ("one-worker", self.one_worker),
            ("two-workers", self.two_workers),
            ("slow-streams", self.slow_streams),
            ("cold-start", self.cold_start),
        ]
        try:
            for name, phase in phases:
                if only and name not in only:
                    continue
                if self.over_budget():
                    self.notes.append(f"Phase {name} skipped: the run's time budget was spent.")
                    continue
                self.log(f"== {name} ({self.elapsed():.0f}s elapsed)")
                try:
                    phase()
                except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                    # One phase failing (a server that does not start) leaves the others
                    # worth running; the report says what is missing and why.
                    self.notes.append(f"Phase {name} failed: {exc}")
                    self.log(f"   phase {name} failed: {exc}")
                    stop_all()
        finally:
            self.stop_bare()
            stop_all()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def over_budget(self) -> bool:
        return self.elapsed() > self.plan.budget_s

    def add(self, scenario: str, target: str, round_: int, figures: dict[str, Any]) -> None:
        self.records.append(Record(scenario, target, round_, figures))
        for sample in figures.get("error_samples") or ():
            self.notes.append(f"{scenario}, {target}, round {round_}: {sample}")
        self.log(f"{self.elapsed():5.0f}s {scenario:<18} {target:<16} r{round_}  {_brief(figures)}")

    # --- phase: one worker each ----------------------------------------------------------

    def one_worker(self) -> None:
        answer = self.plan.answer
        specs = {
            "ours": ServerSpec("ours", "ours", answer, heartbeat_s=15.0),
            "baseline": ServerSpec("baseline", "baseline", answer),
            "ours-traced": ServerSpec("ours", "ours-traced", answer, tracing=True),
            "baseline-traced": ServerSpec("baseline", "baseline-traced", answer, tracing=True),
        }
        with self.servers(specs) as servers:
            self.start_bare(answer)
            self.warm_up(servers.values())
            everything = [*servers, "bare"]
            self.throughput("nonstream", servers, everything, stream=False)
            self.throughput("stream", servers, everything, stream=True)
            # The long answer: with the short one it gives the cost per streamed token.
            self.throughput("stream-long", servers, ["ours", "baseline", "bare"], stream=True)
            self.latency_at_half_peak(servers)
            self.stop_bare()
        # Stopped (SIGTERM: traces flushed); now count what the tracing servers stored.
        for label in ("ours-traced", "baseline-traced"):
            server = servers[label]
            stored = count_traces(server.spec.trace_db(self.workdir))
            self.add("traces", label, 0, {"stored": stored, "answered": server.answered})

    def measure(self, label: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """One measurement, repeated (up to twice) when other work took a good part of the
        server's core meanwhile: a shared core says nothing about the server."""
        figures = run()
        for _ in range(2):
            foreign = figures.get("foreign_cpu_share") or 0.0
            if foreign <= FOREIGN_LIMIT or self.over_budget():
                break
            self.notes.append(
                f"{label}: measured again, other work used {foreign:.0%} of the server's core"
            )
            time.sleep(2.0)
            figures = run()
        return figures

    def throughput(
        self, scenario: str, servers: dict[str, Server], targets: list[str], *, stream: bool
    ) -> None:
        long = scenario == "stream-long"
        for round_ in range(self.plan.rounds):
            for target in targets:
                if self.over_budget():
                    return
                if target == "bare":
                    command = {
                        "mode": "closed",
                        "stream": stream,
                        "long": long,
                        "concurrency": self.plan.concurrency,
                        "duration": self.plan.duration_s,
                        "warmup": self.plan.load_warmup_s,
                    }
                    figures = self.measure(
                        f"{scenario} {target}", functools.partial(self.bare_command, command)
                    )
                else:
                    args = ["--mode", "closed", "--concurrency", str(self.plan.concurrency)]
                    figures = self.measure(
                        f"{scenario} {target}",
                        functools.partial(
                            self.load, servers[target], args, stream=stream, long=long
                        ),
                    )
                self.add(scenario, target, round_, figures)

    def latency_at_half_peak(self, servers: dict[str, Server]) -> None:
        """Open-loop load at half of each server's measured peak; bare at ours' rate."""
        peak = {
            target: _median(r.figures["rps"] for r in self.records if r.scenario == "nonstream"
                            and r.target == target)
            for target in ("ours", "baseline")
        }  # fmt: skip
        if any(math.isnan(value) or value <= 0 for value in peak.values()):
            self.notes.append("Latency at half load skipped: no peak throughput measured.")
            return
        rates = {
            "ours": peak["ours"] / 2,
            "baseline": peak["baseline"] / 2,
            "bare": peak["ours"] / 2,
        }
        for round_ in range(self.plan.rounds):
            for target, rate in rates.items():
                if self.over_budget():
                    return
                if target == "bare":
                    command = {
                        "mode": "open",
                        "rate": rate,
                        "duration": self.plan.duration_s,
                        "warmup": self.plan.load_warmup_s,
                    }
                    figures = self.measure(
                        f"latency {target}", functools.partial(self.bare_command, command)
                    )
                else:
                    figures = self.measure(
                        f"latency {target}",
                        functools.partial(
                            self.load,
                            servers[target],
                            ["--mode", "open", "--rate", f"{rate:.1f}"],
                            stream=False,
                        ),
                    )
                figures["rate"] = rate
                self.add("latency-half-load", target, round_, figures)

    # --- phase: two workers each -----------------------------------------------------------

    def two_workers(self) -> None:
        answer = self.plan.answer
        specs = {
            "ours": ServerSpec("ours", "ours-2w", answer, workers=2, cores=BOTH_CORES),
            "baseline": ServerSpec("baseline", "baseline-2w", answer, workers=2, cores=BOTH_CORES),
        }
        # Twice the clients, so that two workers have as much to do as one had.
        clients = str(self.plan.concurrency * 2)
        with self.servers(specs) as servers:
            self.warm_up(servers.values(), cores=BOTH_CORES)
            for scenario, stream in (("nonstream-2w", False), ("stream-2w", True)):
                for round_ in range(self.plan.rounds):
                    for target, server in servers.items():
                        if self.over_budget():
                            return
                        figures = self.load(
                            server,
                            ["--mode", "closed", "--concurrency", clients, "--new-connections"],
                            stream=stream,
                            cores=BOTH_CORES,
                        )
                        self.add(scenario, target, round_, figures)

    # --- phase: many slow streams ----------------------------------------------------------

    def slow_streams(self) -> None:
        plan = self.plan
        answer = plan.slow_answer
        specs = {
            "ours": ServerSpec("ours", "ours-slow", answer, heartbeat_s=plan.slow_heartbeat_s),
            "baseline": ServerSpec("baseline", "baseline-slow", answer),
        }
        stream_s = answer.tokens * answer.token_delay_ms / 1000
        timeout = plan.slow_streams / plan.ramp_rate + stream_s * 4 + 30
        for round_ in range(plan.slow_rounds):
            for target, spec in specs.items():
                if self.over_budget():
                    return
                # A fresh server each round: RSS only grows, so a second round on the same
                # process would measure nothing.
                with self.servers({target: spec}) as servers:
                    server = servers[target]
                    # First requests load what the app loads lazily; not to be counted per stream.
                    warm = [
                        threading.Thread(
                            target=answer_once,
                            args=(server.port, 30.0),
                            kwargs={"stream": stream, "long": True},
                        )
                        for stream in (False, True, True)
                    ]
                    for thread in warm:
                        thread.start()
                    for thread in warm:
                        thread.join()
                    figures = self.hold(server, timeout)
                self.add("slow-streams", target, round_, figures)
            if not self.over_budget():
                bare = self.bare_hold(answer, plan.bare_hold_streams)
                self.add("slow-streams", "bare", round_, bare)

    def hold(self, server: Server, timeout: float) -> dict[str, Any]:
        plan = self.plan
        before = sum(server.rss_kib())
        cpu0 = server.cpu_s()
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                peak.append(sum(server.rss_kib()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            figures = self.run_load(
                server,
                [
                    "--mode",
                    "hold",
                    "--streams",
                    str(plan.slow_streams),
                    "--ramp-rate",
                    str(plan.ramp_rate),
                    "--timeout",
                    str(timeout),
                ],
                stream=True,
                timeout=timeout + 60,
                expect_tokens=plan.slow_answer.tokens,
            )
        finally:
            done.set()
            sampler.join()
        figures["rss_before_kib"] = before
        figures["rss_peak_kib"] = max(peak)
        opened = figures.get("max_open") or 0
        figures["rss_per_stream_kib"] = (max(peak) - before) / opened if opened else math.nan
        figures["server_cpu_s"] = server.cpu_s() - cpu0
        return figures

    # --- phase: cold start -----------------------------------------------------------------

    def cold_start(self) -> None:
        answer = self.plan.answer
        # (scenario, tracing, bytecode cached): cached bytecode is how a deployed service
        # restarts; without it every module is compiled from source (a first start ever).
        variants = [("cold-start", False, True), ("cold-start-traced", True, True)]
        if self.plan.cold_no_pyc:
            variants.append(("cold-start-no-pyc", False, False))
        for scenario, tracing, cached in variants:
            kinds: tuple[Kind, ...] = ("ours", "baseline")
            specs = {
                kind: ServerSpec(
                    kind, f"{kind}-{scenario}", answer, tracing=tracing, bytecode_cache=cached
                )
                for kind in kinds
            }
            # Round -1 fills the bytecode cache and creates the trace store; not counted.
            # Without a cache every start is alike: one round says enough.
            rounds = range(-1, self.plan.cold_rounds) if cached else range(1)
            for round_ in rounds:
                for target, spec in specs.items():
                    if self.over_budget():
                        return
                    figures = self.start_once(spec)
                    if round_ >= 0:
                        self.add(scenario, target, round_, figures)

    def start_once(self, spec: ServerSpec, timeout: float = 60.0) -> dict[str, Any]:
        """Spawn → first successful answer; for ours also worker boot → first answer."""
        server = Server.start(spec, self.workdir)
        watcher = LogWatcher(server.log_path, "Booting worker") if spec.kind == "ours" else None
        answered_at: float | None = None
        deadline = server.spawned_at + timeout
        try:
            while time.monotonic() < deadline and server.process.poll() is None:
                if answer_once(server.port, timeout=timeout):
                    answered_at = time.monotonic()
                    break
                time.sleep(0.01)
            rss = server.rss_kib()
        finally:
            if watcher is not None:
                watcher.stop()
            server.stop()
        if answered_at is None:
            return {"errors": 1, "log": server.log_tail()}
        figures: dict[str, Any] = {
            "errors": 0,
            "start_to_answer_s": answered_at - server.spawned_at,
            "rss_kib": max(rss, default=0),
        }
        if watcher is not None and watcher.seen_at is not None:
            figures["worker_to_answer_s"] = answered_at - watcher.seen_at
        elif spec.kind == "baseline":
            # uvicorn with one worker serves in the process it started: the same clock.
            figures["worker_to_answer_s"] = figures["start_to_answer_s"]
        return figures

    # --- servers, load, bare -----------------------------------------------------------------

    @contextmanager
    def servers(self, specs: dict[str, ServerSpec]) -> Iterator[dict[str, Server]]:
        started: dict[str, Server] = {}
        try:
            for target, spec in specs.items():
                started[target] = Server.start(spec, self.workdir)
            for target, server in started.items():
                server.wait_ready()
                self.log(
                    f"{self.elapsed():5.0f}s {target} ({server.spec.label}) ready on "
                    f":{server.port}, workers {server.worker_pids()}, "
                    f"{time.monotonic() - server.spawned_at:.1f}s"
                )
            yield started
        finally:
            for server in started.values():
                server.stop()

    def warm_up(self, servers: Any, cores: str = LOAD_CORE) -> None:
        seconds = str(self.plan.server_warmup_s)
        for server in servers:
            # A traced server's warm-up leaves a trace backlog to wait for: keep it short.
            for stream in (False,) if server.spec.tracing else (False, True):
                self.load(
                    server,
                    ["--mode", "closed", "--concurrency", str(self.plan.concurrency)],
                    stream=stream,
                    duration=seconds,
                    cores=cores,
                )

    def load(
        self,
        server: Server,
        extra: list[str],
        *,
        stream: bool,
        long: bool = False,
        duration: str | None = None,
        cores: str = LOAD_CORE,
    ) -> dict[str, Any]:
        """One load run; adds the server's CPU per request and worker RSS to the figures, and
        how busy the server's core was with other work (another job on the machine)."""
        cpu0 = server.cpu_s()
        core0 = core_busy_s(0)
        wall0 = time.monotonic()
        workers0 = {pid: cpu_s(pid) for pid in server.worker_pids()}
        tokens = self.plan.answer.tokens_for(long)
        args = [
            *extra,
            "--duration", duration or str(self.plan.duration_s),
            "--warmup", str(self.plan.load_warmup_s),
        ]  # fmt: skip
        if long:
            args.append("--long")
        figures = self.run_load(server, args, stream=stream, cores=cores, expect_tokens=tokens)
        # Work the server still does after its last answer (MLflow exporting traces from its
        # background threads) belongs to this run: it is waited for and counted, so that it
        # neither hides the cost of tracing nor lands on the next run's core.
        figures["drain_s"] = self.quiesce(server)
        cpu = server.cpu_s() - cpu0
        wall = time.monotonic() - wall0
        if cores == LOAD_CORE:
            # Core 0 holds only the server here; whatever else ran on it was not ours.
            figures["foreign_cpu_share"] = max(0.0, (core_busy_s(0) - core0 - cpu) / wall)
        if len(workers0) > 1:
            # Keep-alive connections stay with the worker that accepted them: how evenly the
            # clients' connections happened to spread (1.0 = evenly).
            spent = [cpu_s(pid) - before for pid, before in workers0.items()]
            figures["worker_balance"] = min(spent) / max(spent) if max(spent) > 0 else None
        total = figures.get("total_ok") or 0
        figures["cpu_per_request_ms"] = cpu / total * 1000 if total else None
        # What one core sustains when every request's work, export included, is paid for.
        figures["capacity_rps"] = total / cpu if cpu > 0 else None
        figures["rss_kib"] = max(server.rss_kib(), default=0)
        return figures

    def quiesce(self, server: Server) -> float:
        """Wait until the server's processes are idle (under 5% of a core for 0.25 s);
        seconds waited, bounded by the plan."""
        started = time.monotonic()
        while time.monotonic() - started < self.plan.drain_limit_s:
            before = server.cpu_s()
            time.sleep(0.25)
            if server.cpu_s() - before < 0.0125:
                break
        else:
            self.notes.append(
                f"{server.spec.label} was still busy {self.plan.drain_limit_s:g} s after a run"
            )
        return max(0.0, time.monotonic() - started - 0.25)

    def run_load(
        self,
        server: Server,
        args: list[str],
        *,
        stream: bool,
        cores: str = LOAD_CORE,
        timeout: float | None = None,
        expect_tokens: int | None = None,
    ) -> dict[str, Any]:
        command = [
            "taskset", "-c", cores, sys.executable, "-m", "bench.load",
            "--url", server.invocations_url, *args,
        ]  # fmt: skip
        if stream:
            command.append("--stream")
        if expect_tokens is not None:
            command += ["--expect-tokens", str(expect_tokens)]
        limit = timeout or (self.plan.duration_s + self.plan.load_warmup_s + 90)
        try:
            done = subprocess.run(
                command,
                cwd=REPO,
                env=process_env(),
                capture_output=True,
                text=True,
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"errors": 1, "error_kinds": {"load generator timed out": 1}}
        if done.returncode != 0 or not done.stdout.strip():
            return {"errors": 1, "error_kinds": {"load generator failed": 1}, "log": done.stderr}
        figures: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
        server.count_answer(int(figures.get("total_ok") or 0))
        if not figures.get("answers_as_expected", True):
            self.notes.append(
                f"{server.spec.label}: some answers did not have the expected {expect_tokens} "
                "tokens"
            )
        return figures

    def start_bare(self, answer: Answer) -> None:
        command = ["taskset", "-c", SERVER_CORE, sys.executable, "-m", "bench.bare"]
        env = {**process_env(), **answer.env()}
        self._bare = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        ready = self._bare_line(timeout=120)
        if not ready.get("ready"):
            raise RuntimeError("the bare runner did not start")

    def bare_command(self, command: dict[str, Any]) -> dict[str, Any]:
        if self._bare is None or self._bare.stdin is None:
            return {"errors": 1}
        pid = self._bare.pid
        cpu0, core0, wall0 = cpu_s(pid), core_busy_s(0), time.monotonic()
        self._bare.stdin.write(orjson.dumps(command) + b"\n")
        self._bare.stdin.flush()
        figures = self._bare_line(timeout=float(command.get("duration", 10)) + 120)
        # The bare loop has core 0 to itself too; anything else there was not ours.
        busy = core_busy_s(0) - core0 - (cpu_s(pid) - cpu0)
        figures["foreign_cpu_share"] = max(0.0, busy / (time.monotonic() - wall0))
        return figures

    def _bare_line(self, timeout: float) -> dict[str, Any]:
        assert self._bare is not None
        stdout = self._bare.stdout
        assert stdout is not None
        result: list[bytes] = []
        # A thread, so that a stuck bare runner cannot hang the whole run.
        reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.stop_bare()
            raise RuntimeError("the bare runner did not answer in time")
        answer: dict[str, Any] = orjson.loads(result[0])
        return answer

    def stop_bare(self) -> None:
        if self._bare is not None:
            self._bare.kill()
            self._bare.wait(timeout=10)
            self._bare = None

    def bare_hold(self, answer: Answer, streams: int) -> dict[str, Any]:
        """The graph alone holding `streams` slow runs at once: its memory per open run."""
        command = [
            "taskset", "-c", SERVER_CORE, sys.executable, "-m", "bench.bare_hold",
            "--streams", str(streams),
        ]  # fmt: skip
        env = {**process_env(), **answer.env()}
        stream_s = answer.tokens * answer.token_delay_ms / 1000
        try:
            done = subprocess.run(
                command,
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=stream_s * 4 + 120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"errors": 1}
        if done.returncode != 0:
            return {"errors": 1, "log": done.stderr[-2000:]}
        figures: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
        return figures


def count_traces(db: Path) -> int | None:
    """Traces in an MLflow SQLite store (None when there is no store)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            (count,) = connection.execute("SELECT COUNT(*) FROM trace_info").fetchone()
            return int(count)
    except sqlite3.Error:
        return None


def _median(values: Iterator[float] | Any) -> float:
    kept = sorted(v for v in values if v is not None)
    if not kept:
        return math.nan
    middle = len(kept) // 2
    return kept[middle] if len(kept) % 2 else (kept[middle - 1] + kept[middle]) / 2


def _brief(figures: dict[str, Any]) -> str:
    parts = []
    for key, label, unit in (
        ("rps", "", "/s"),
        ("latency_ms", "p50 ", "ms"),
        ("ttft_ms", "ttft ", "ms"),
        ("cpu_per_request_ms", "cpu ", "ms"),
        ("start_to_answer_s", "start→answer ", "s"),
        ("rss_per_stream_kib", "KiB/stream ", ""),
        ("max_open", "open ", ""),
        ("stored", "traces ", ""),
        ("answered", "of ", ""),
        ("foreign_cpu_share", "other work on core 0 ", ""),
    ):
        value = figures.get(key)
        if isinstance(value, dict):
            value = value.get("p50")
        if isinstance(value, int | float) and not math.isnan(value):
            parts.append(f"{label}{value:.4g}{unit}")
    if figures.get("errors"):
        parts.append(f"errors {figures['errors']} {figures.get('error_kinds', '')}")
    return "  ".join(parts)
