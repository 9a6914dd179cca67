"""Where a worker's finished traces go: one line each into the spool (flushed on a timer, off
the request), and the export process that empties the spool, started when none runs.

The export process is elected by a lock on the spool (`spool.EXPORTER_LOCK`): any worker
that finds it free starts one, a second one started in a race exits at once, and whichever
worker looks next restarts it if it dies. At shutdown a worker waits (bounded) until the
traces it wrote are stored, so a SIGTERM loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agent_service.observability import spool
from agent_service.observability.trace_record import TraceRecord

log = logging.getLogger(__name__)

# How often buffered traces are written to the spool: a trace is visible in the store
# about this much plus the exporter's poll interval after its request ended.
FLUSH_INTERVAL_S = 0.2
# How often a worker checks that an export process runs.
WATCH_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class ExporterCommand:
    tracking_uri: str
    drain_s: float
    cpus: str = ""
    log_level: str = "INFO"
    linger_s: float = 3.0

    def argv(self, directory: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "agent_service.observability.export",
            "--spool",
            str(directory),
            "--tracking-uri",
            self.tracking_uri,
            "--drain",
            str(self.drain_s),
            "--linger",
            str(self.linger_s),
            "--cpus",
            self.cpus,
            "--log-level",
            self.log_level,
        ]


class TraceSink:
    def __init__(self, directory: Path, max_bytes: int, exporter: ExporterCommand) -> None:
        self.directory = directory
        self.writer = spool.SpoolWriter(directory, max_bytes)
        self.unserialisable = 0
        self._exporter = exporter
        self._process: subprocess.Popen[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()

    # --- the request path ---------------------------------------------------------------

    def submit(self, record: TraceRecord) -> bool:
        """Queue a finished trace for export; False when it was dropped (and counted)."""
        try:
            line = record.to_line()
        except Exception:  # a trace must never fail a request
            self.unserialisable += 1
            log.exception("Dropped the trace of this request: it could not be serialised")
            return False
        return self.writer.append(line)

    # --- lifetime ----------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.ensure_exporter)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="trace-sink")

    async def _run(self) -> None:
        last_watch = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                self.writer.flush()
                if time.monotonic() - last_watch >= WATCH_INTERVAL_S:
                    last_watch = time.monotonic()
                    await asyncio.to_thread(self.ensure_exporter)
            except OSError:
                log.exception("Could not write traces to the spool %s", self.directory)

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Write everything to the spool and wait until the export process has stored it."""
        async with self._flushing:
            self.writer.flush()
            self.writer.seal()
            await asyncio.to_thread(self.ensure_exporter)
            return await self._wait_exported(timeout_s)

    async def close(self, timeout_s: float) -> None:
        """Stop recording; wait (bounded) until the export process stored our traces."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.writer.close()
        if self.writer.unexported():
            await asyncio.to_thread(self.ensure_exporter)
            if not await self._wait_exported(timeout_s):
                log.error(
                    "Stopping with traces not yet exported (%d segment(s) in %s); the next "
                    "export process for this store will write them",
                    len(self.writer.unexported()),
                    self.directory,
                )
        if self._process is not None:
            # Reaped if it has exited; otherwise it exits by itself once no process writes
            # traces and the spool is empty.
            self._process.poll()

    async def _wait_exported(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.writer.unexported():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def ensure_exporter(self) -> None:
        """Start an export process if none holds the spool's exporter lock."""
        if self._process is not None and self._process.poll() is None:
            return
        if spool.is_locked(self.directory / spool.EXPORTER_LOCK):
            return
        self._process = subprocess.Popen(  # noqa: S603 - our own command line
            self._exporter.argv(self.directory), stdin=subprocess.DEVNULL, close_fds=True
        )

    # --- what /metrics and /agent/info say ------------------------------------------------

    @property
    def dropped(self) -> int:
        return self.writer.dropped + self.unserialisable

    def exporter_status(self) -> dict[str, Any] | None:
        try:
            status: dict[str, Any] = orjson.loads((self.directory / spool.STATUS_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        return status
