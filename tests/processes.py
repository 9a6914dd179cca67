"""Helpers for tests that run the real server as a subprocess (gunicorn, the CLI)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def wait_until_serving(base_url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    """Poll /health until it answers (a condition, bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} did not start within {timeout}s")


@contextmanager
def running_server(
    args: list[str], env: Mapping[str, str], log_path: Path, port: int
) -> Iterator[ServerProcess]:
    # The state store in the test's folder unless the test names one (never ./agent_state.db).
    state = {"STATE_STORE": f"sqlite:///{log_path.parent / 'state.db'}"}
    full_env = {**os.environ, **state, **env}
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            args,
            env=full_env,
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_serving(server.base_url, process)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
