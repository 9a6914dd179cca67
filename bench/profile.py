"""Profile our worker under load with py-spy and name where its time goes.

    python -m bench.profile --scenario stream --seconds 10

Starts our server (one worker, pinned to core 0), drives it from core 1 with the load
generator, samples the worker with `py-spy record --format raw` (collapsed stacks; blocking mode, so
every stack is consistent, at the price of a short pause per sample), and prints
the functions with the most samples: by self time (the frame on top of the stack) and by
inclusive time (anywhere on the stack), plus the share of time by package (ours, aiohttp,
LangGraph, LangChain, MLflow, ...). The raw stacks are kept for flame-graph tools.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.answer import Answer
from bench.procs import BIN, REPO, Server, ServerSpec, stop_all

RESULTS = REPO / "bench" / "results" / "raw"

# "function (path/to/file.py:123)" — one frame of a collapsed stack.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

_STDLIB = "/lib/python3.11/"


@dataclass(frozen=True, slots=True)
class Frame:
    func: str
    file: str

    @property
    def name(self) -> str:
        return f"{self.func} ({_short(self.file)})"

    @property
    def package(self) -> str:
        """The distribution a frame's code belongs to: `langgraph`, `aiohttp`, ...; ours is
        `agent_service`; the standard library is `stdlib:<module>`."""
        if "site-packages/" in self.file:
            return self.file.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        if "/agent_service/" in self.file:
            return "agent_service"
        if _STDLIB in self.file:
            module = self.file.split(_STDLIB, 1)[1].split("/", 1)[0].removesuffix(".py")
            return f"stdlib:{module}"
        return self.file or "native"

    @property
    def is_library(self) -> bool:
        return not self.package.startswith("stdlib:") and self.package != "native"


def _short(path: str) -> str:
    for marker in ("site-packages/", _STDLIB, "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def parse_collapsed(text: str) -> list[tuple[list[Frame], int]]:
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            match = _FRAME.match(raw.strip())
            frames.append(Frame(match["func"], match["file"]) if match else Frame(raw.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks


@dataclass(frozen=True, slots=True)
class Hot:
    """Shares of samples: by self time, inclusive time, package, and — for our own code —
    by the function of ours that was innermost (stdlib work it called included)."""

    own: list[tuple[str, float]]
    inclusive: list[tuple[str, float]]
    packages: list[tuple[str, float]]
    ours: list[tuple[str, float]]


def hot_functions(stacks: list[tuple[list[Frame], int]], top: int = 25) -> Hot:
    """A sample counts for the innermost frame of a package that is not the standard library,
    so asyncio, json, uuid, ... count for whoever called them."""
    total = sum(count for _, count in stacks) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        top_frame = frames[-1]
        own[top_frame.name] += count
        named = next((f for f in reversed(frames) if f.is_library), None)
        packages[named.package if named else top_frame.package] += count
        if named is not None and named.package == "agent_service":
            ours[named.name] += count
        for name in {frame.name for frame in frames}:
            inclusive[name] += count

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, count / total) for name, count in counter.most_common(n)]

    return Hot(shares(own, top), shares(inclusive, top * 2), shares(packages, 15), shares(ours, 15))


def render(stacks: list[tuple[list[Frame], int]], top: int = 25) -> str:
    hot = hot_functions(stacks, top)
    lines = ["By package (innermost non-stdlib frame):"]
    lines += [f"  {share:6.1%}  {name}" for name, share in hot.packages]
    lines.append("\nOur own code, by innermost function of ours (stdlib callees included):")
    lines += [f"  {share:6.1%}  {name}" for name, share in hot.ours]
    lines.append(f"\nTop {top} by self time:")
    lines += [f"  {share:6.1%}  {name}" for name, share in hot.own]
    lines.append(f"\nTop {top * 2} by inclusive time:")
    lines += [f"  {share:6.1%}  {name}" for name, share in hot.inclusive]
    return "\n".join(lines)


def profile(scenario: str, seconds: float, tracing: bool, rate: int) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    spec = ServerSpec("ours", "ours-profile", Answer(), tracing=tracing)
    server = Server.start(spec, workdir)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{scenario}{'-traced' if tracing else ''}.txt"
    try:
        server.wait_ready()
        stream = scenario in ("stream", "stream-long")
        load = [
            "taskset", "-c", "1", sys.executable, "-m", "bench.load",
            "--url", server.invocations_url, "--concurrency", "16",
            "--duration", str(seconds + 3), "--warmup", "1",
        ]  # fmt: skip
        if stream:
            load.append("--stream")
        if scenario == "stream-long":
            load.append("--long")
        generator = subprocess.Popen(load, stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        worker = server.worker_pids()[0]
        subprocess.run(
            [
                str(BIN / "py-spy"),
                "record",
                "--pid",
                str(worker),
                "--duration",
                str(int(seconds)),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--full-filenames",
                # Only the thread holding the GIL: CPU time, not threads waiting on a queue.
                "--gil",
                "-o",
                str(out),
            ],
            check=True,
            capture_output=True,
            timeout=seconds + 60,
        )
        generator.communicate(timeout=seconds + 60)
    finally:
        stop_all()
    return render(parse_collapsed(out.read_text())) + f"\n\nraw stacks: {out}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenario", choices=("nonstream", "stream", "stream-long"), default="nonstream"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tracing", action="store_true")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--analyze", type=Path, help="only analyze an existing raw profile")
    args = parser.parse_args(argv)
    if args.analyze:
        print(render(parse_collapsed(args.analyze.read_text())))
        return
    print(profile(args.scenario, args.seconds, args.tracing, args.rate))


if __name__ == "__main__":
    main()
