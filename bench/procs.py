"""Server processes: start ours or the baseline pinned to a core, find their workers, read
their memory and CPU time from /proc, and always stop them (whole process groups).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson

from bench.answer import Answer, request_body

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Compiled bytecode for every process the bench starts, kept outside the repository and the
# venv (this machine sets PYTHONDONTWRITEBYTECODE and the venv has no .pyc files): start-up is
# then measured as after any first start, not with every module compiled from source.
PYCACHE = Path(tempfile.gettempdir()) / "agent-bench-pycache"
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

Kind = Literal["ours", "baseline"]

# Settings the harness decides; anything inherited under these prefixes is dropped so a
# developer's own model endpoint or tracking server cannot leak into a run.
_STRIPPED_PREFIXES = (
    "DATABRICKS_",
    "OPENAI_",
    "MLFLOW_",
    "AGENT_",
    "OFFLINE_",
    "BENCH_",
    "STATE_",
    "LAKEBASE_",
)
_STRIPPED = {"MODEL_BACKEND", "WEB_CONCURRENCY", "SSE_HEARTBEAT_SECONDS", "TRACE_SAMPLING_RATIO"}

_running: set[Server] = set()


def process_env(*, bytecode_cache: bool = True) -> dict[str, str]:
    """The environment for a process the bench starts, without inherited settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_STRIPPED_PREFIXES) and key not in _STRIPPED
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if bytecode_cache:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "agent-bench-no-pycache")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ServerSpec:
    kind: Kind
    label: str
    answer: Answer
    workers: int = 1
    tracing: bool = False
    # Ours only: MLflow's AgentServer has no heartbeats.
    heartbeat_s: float = 15.0
    cores: str = "0"
    # False: every module compiled from source at start (what this machine does by default).
    bytecode_cache: bool = True
    # More settings for ours (the state bench: STATE_STORE).
    extra_env: tuple[tuple[str, str], ...] = ()

    def command(self, port: int) -> list[str]:
        pin = ["taskset", "-c", self.cores]
        if self.kind == "ours":
            server = [str(BIN / "agent-server"), "--port", str(port)]
            return [*pin, *server, "--workers", str(self.workers)]
        # As the template starts it: AgentServer.run → uvicorn.run(app, workers=N).
        start = "from bench.baseline_app import main; main()"
        return [
            *pin,
            sys.executable,
            "-c",
            start,
            "--port",
            str(port),
            "--workers",
            str(self.workers),
        ]

    def env(self, workdir: Path) -> dict[str, str]:
        env = process_env(bytecode_cache=self.bytecode_cache)
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{self.trace_db(workdir)}"
        env["MLFLOW_EXPERIMENT_NAME"] = f"bench-{self.label}"
        if self.kind == "ours":
            env.update(
                AGENT_TASK="agent/v1/responses",
                MODEL_BACKEND="offline",
                OFFLINE_SCRIPT=str(self.answer.write_script(workdir / f"{self.label}.json")),
                OFFLINE_TOKEN_DELAY_MS=str(self.answer.token_delay_ms),
                AGENT_TRACING="true" if self.tracing else "false",
                TRACE_SAMPLING_RATIO="1.0",
                SSE_HEARTBEAT_SECONDS=str(self.heartbeat_s),
                # Off unless the run says otherwise: the comparisons with the baseline are of
                # stateless serving (bench/state.py measures what state adds).
                STATE_STORE="off",
            )
            env.update(self.extra_env)
        else:
            env.update(self.answer.env())
            env["BENCH_TRACING"] = "true" if self.tracing else "false"
            env["PYTHONPATH"] = str(REPO)
        return env

    def trace_db(self, workdir: Path) -> Path:
        return workdir / f"{self.label}-mlflow.db"


@dataclass(eq=False)
class Server:
    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    spawned_at: float
    # Every successful answer the harness saw this server give (for the trace count).
    answered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, spec: ServerSpec, workdir: Path) -> Server:
        port = free_port()
        log_path = workdir / f"{spec.label}-{port}.log"
        with log_path.open("wb") as log_file:
            spawned_at = time.monotonic()
            process = subprocess.Popen(
                spec.command(port),
                env=spec.env(workdir),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own process group: stopping it stops its workers too.
                start_new_session=True,
            )
        server = cls(spec, port, process, log_path, workdir, spawned_at)
        _running.add(server)
        return server

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def invocations_url(self) -> str:
        return f"{self.base_url}/invocations"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll /health until it answers and every worker exists (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.spec.label} exited early; see {self.log_path}")
            if http_status(self.port, "GET", "/health") == 200 and (
                len(self.worker_pids()) >= self.spec.workers
            ):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.spec.label} not ready within {timeout}s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        pid = self.process.pid
        if self.spec.kind == "baseline" and self.spec.workers == 1:
            return [pid]  # uvicorn serves in its own process
        kids = children(pid)
        if self.spec.kind == "baseline":
            # uvicorn's supervisor spawns workers with multiprocessing (spawn): skip its
            # resource tracker.
            kids = [kid for kid in kids if "spawn_main" in cmdline(kid)]
        return kids

    def rss_kib(self) -> list[int]:
        return [rss for pid in self.worker_pids() if (rss := rss_kib(pid)) is not None]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the server's whole process tree."""
        pids = [self.process.pid, *descendants(self.process.pid)]
        return sum(cpu_s(pid) for pid in pids)

    def count_answer(self, n: int = 1) -> None:
        with self._lock:
            self.answered += n

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the group (ours flushes traces on it), SIGKILL if still there."""
        _running.discard(self)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_all() -> None:
    for server in list(_running):
        server.stop(timeout=10)


def http_status(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 2.0
) -> int | None:
    """One request; its status, or None when nothing answered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return response.status


def answer_once(
    port: int, timeout: float = 10.0, *, stream: bool = False, long: bool = False
) -> bool:
    body = orjson.dumps(request_body(stream=stream, long=long))
    return http_status(port, "POST", "/invocations", body, timeout=timeout) == 200


# --- /proc ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                kids.append(int(entry.name))
    return sorted(kids)


def descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        kids = children(queue.pop())
        found.extend(kids)
        queue.extend(kids)
    return found


def core_busy_s(core: int) -> float:
    """Seconds core `core` has spent busy (everything but idle and iowait) since boot."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]
            return (sum(values[:8]) - idle) / CLOCK_TICKS
    return 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class LogWatcher:
    """Notes when a line containing `needle` first appears in a log file (polled every 5 ms
    from a thread, so it works whatever the log format is)."""

    def __init__(self, path: Path, needle: str) -> None:
        self.path = path
        self.needle = needle.encode()
        self.seen_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                if self.needle in self.path.read_bytes():
                    self.seen_at = time.monotonic()
                    return
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
