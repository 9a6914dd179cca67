"""Traces held back from export, then exported by a chosen path, for tests that compare paths.

`HeldSpool` holds the spool's exporter lock the way a running export process would, so the
service's finished traces stay in the spool; `take` moves them out into as many copies as
the test wants, each exported by `export` (the real export process, `--mode auto` for our
batched writers or `--mode mlflow` for MLflow's own export).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Trace
from mlflow.tracking import MlflowClient

from agent_service.keys import AGENT, GATE
from agent_service.observability import spool
from tests.processes import BIN, free_port, running_server
from tests.wire import Client


@dataclass
class HeldSpool:
    directory: Path
    _lock: int | None = None

    def hold(self) -> None:
        spool.prepare(self.directory)
        self._lock = spool.try_lock(self.directory / spool.EXPORTER_LOCK)
        assert self._lock is not None, "no export process runs for this spool yet"

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    async def take(self, clients: list[Client], *copies: Path) -> int:
        """Once every request has ended: the services' finished traces, moved into each of
        `copies` (fresh spool directories). Returns how many traces there were."""
        for client in clients:
            assert client.app is not None
            gate = client.app[GATE]
            async with asyncio.timeout(30):
                while gate.in_flight:  # noqa: ASYNC110 - the gate has no event to wait on
                    await asyncio.sleep(0.01)
            sink = client.app[AGENT].tracer.sink
            assert sink is not None
            sink.writer.flush()
            sink.writer.seal()
        segments = list(spool.iter_sealed(self.directory))
        lines = 0
        for copy in copies:
            spool.prepare(copy)
            for segment in segments:
                shutil.copy2(segment, copy / segment.name)
        for segment in segments:
            lines += segment.read_bytes().count(b"\n")
            segment.unlink()
        return lines


def held_spool(tracking_uri: str, base: Path) -> Iterator[HeldSpool]:
    held = HeldSpool(spool.spool_dir_for(tracking_uri, str(base)))
    held.hold()
    try:
        yield held
    finally:
        held.release()


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store that a service has open."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


async def export(directory: Path, tracking_uri: str, mode: str = "auto") -> str:
    """Run the export process over a spool directory until it is empty; its log."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_service.observability.export",
        "--spool",
        str(directory),
        "--tracking-uri",
        tracking_uri,
        "--mode",
        mode,
        "--linger",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    log = output.decode()
    assert process.returncode == 0, log
    assert not list(spool.segments(directory)), f"everything exported\n{log}"
    return log


def stored_traces(tracking_uri: str, experiment_ids: list[str]) -> dict[str, Trace]:
    """Every trace of the experiments, by trace id, as `search_traces` reads them."""
    client = MlflowClient(tracking_uri)
    found = client.search_traces(locations=experiment_ids, max_results=500)
    return {trace.info.trace_id: trace for trace in found}


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where two JSON-like values differ, as readable paths."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found: list[str] = []
        for key in sorted(set(ours) | set(theirs), key=str):
            if key not in ours:
                found.append(f"{path}.{key}: missing in ours (theirs: {theirs[key]!r:.200})")
            elif key not in theirs:
                found.append(f"{path}.{key}: only in ours ({ours[key]!r:.200})")
            else:
                found += differences(ours[key], theirs[key], f"{path}.{key}")
        return found
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return [f"{path}: {len(ours)} items in ours, {len(theirs)} in theirs"]
        found = []
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            found += differences(mine, other, f"{path}[{index}]")
        return found
    if ours != theirs:
        return [f"{path}: ours {ours!r:.200} != theirs {theirs!r:.200}"]
    return []


@contextmanager
def mlflow_server(backend_uri: str, folder: Path) -> Iterator[str]:
    """MLflow's own tracking server (`mlflow server`) on 127.0.0.1; yields its URI."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    with running_server(args, {}, folder / "server.log", port) as server:
        yield server.base_url
