"""The export process: one per trace destination on a machine, elected by a lock.

    python -m agent_service.observability.export --spool DIR --tracking-uri URI

Whoever writes traces (a worker, see `trace_sink.py`) starts it when nobody holds the spool's
exporter lock; a second one started in a race finds the lock taken and exits. It reads the
spool, writes batches to the destination (`destinations.py`), deletes what is stored, and
writes what it did to `status.json` for /metrics and /agent/info. It stops when no process
writes traces any more and the spool is empty: at once after SIGTERM (within `--drain`
seconds), after `--linger` seconds otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.config
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from agent_service.observability import spool
from agent_service.observability.export.destinations import Destination, destination_for
from agent_service.observability.logs import logging_config
from agent_service.observability.trace_record import RECORD_VERSION

log = logging.getLogger("agent_service.observability.export")

# A batch: at most this many traces or bytes, written in one transaction or request set.
BATCH_TRACES = 1000
BATCH_BYTES = 8 * 1024 * 1024
# How often the spool is looked at when there was nothing to do.
IDLE_POLL_S = 0.1
# After a batch smaller than BATCH_TRACES, the wait before the next one, so that batches
# grow. Writing a trace to SQLite costs more the bigger the store is: MLflow's indexes are
# keyed by the random trace id, so each trace dirties some 20 index pages of its own
# unless the batch shares them. Measured on a store grown to 16,000 traces (170 MB): 0.86-0.90
# ms a trace in batches of 200, 0.54-0.67 in batches of 500, 0.54-0.60 in batches of 1000
# (0.30-0.40 on a fresh store). Workers write to the spool every 0.2 s. Traces reach the store
# this much later; a worker's shutdown waits this much longer at most.
GATHER_S = 1.0
# A trace the destination rejects while others of its batch are accepted is tried this
# many times, then dropped (and counted): one bad trace must not hold up the rest.
REJECT_ATTEMPTS = 2
# Waits between attempts while the destination is unreachable.
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class _Pending:
    """Lines read from one segment in this round."""

    segment: spool.Segment
    key: str
    end_offset: int
    finished: bool  # everything the segment will ever hold is in this round


@dataclass(slots=True)
class Status:
    destination: str
    exported: int = 0
    dropped_unreadable: int = 0
    dropped_rejected: int = 0
    failing_since: float | None = None
    error: str | None = None
    backlog_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "destination": self.destination,
            "exported": self.exported,
            "dropped": {"unreadable": self.dropped_unreadable, "rejected": self.dropped_rejected},
            "failing_since": self.failing_since,
            "error": self.error,
            "backlog_bytes": self.backlog_bytes,
        }


@dataclass
class Exporter:
    directory: Path
    destination: Destination
    linger_s: float
    drain_s: float
    status: Status = field(init=False)
    terminating_at: float | None = None
    _offsets: dict[str, int] = field(default_factory=dict)
    _rejections: dict[str, int] = field(default_factory=dict)
    _backoff: int = 0
    # What status.json says now (without its time), so that it is rewritten on a change only:
    # idle, the loop runs 10 times a second, and a rewrite costs four syscalls.
    _written_status: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.status = Status(self.destination.description)

    def run(self) -> None:
        idle_since = time.monotonic()
        while True:
            started = time.monotonic()
            exported = self.step()
            self._write_status()
            if exported:
                idle_since = time.monotonic()
                if exported < BATCH_TRACES and self.terminating_at is None:
                    time.sleep(max(0.0, started + GATHER_S - idle_since))
                continue
            now = time.monotonic()
            if not spool.segments(self.directory) and not self._producers_alive():
                if self.terminating_at is not None or now - idle_since >= self.linger_s:
                    return
            elif self.terminating_at is not None and now - self.terminating_at > self.drain_s:
                left = sum(1 for _ in spool.segments(self.directory))
                log.error(
                    "Stopping with %d spool segment(s) not exported (the drain period is "
                    "over); they stay in %s and are exported at the next start",
                    left,
                    self.directory,
                )
                return
            time.sleep(self._pause())

    def terminate(self) -> None:
        if self.terminating_at is None:
            self.terminating_at = time.monotonic()

    def step(self) -> int:
        """Export one batch; the number of traces taken off the spool."""
        raws, pending = self._collect()
        if not pending:
            return 0
        lines = self._parse(raws)
        if lines and not self._write(lines):
            return 0
        for item in pending:
            self._offsets[item.key] = item.end_offset
            if item.finished:
                with contextlib.suppress(FileNotFoundError):
                    item.segment.path.unlink()
                self._offsets.pop(item.key, None)
        return len(raws)

    def _collect(self) -> tuple[list[bytes], list[_Pending]]:
        raws: list[bytes] = []
        pending: list[_Pending] = []
        size = 0
        backlog = 0
        for segment in spool.segments(self.directory):
            key = segment.path.stem
            offset = self._offsets.get(key, 0)
            try:
                length = segment.path.stat().st_size
            except FileNotFoundError:
                continue
            backlog += length - offset
            if len(raws) >= BATCH_TRACES or size >= BATCH_BYTES:
                continue
            # Decided before reading: a writer that dies after this read leaves a tail
            # that the next round picks up.
            abandoned = not segment.sealed and spool.writer_gone(segment)
            lines, end = spool.read_lines(segment.path, offset)
            taken = 0
            for line in lines:
                if len(raws) >= BATCH_TRACES or size >= BATCH_BYTES:
                    break
                raws.append(line)
                size += len(line)
                taken += 1
            end = offset + sum(len(line) + 1 for line in lines[:taken])
            everything = taken == len(lines)
            finished = everything and (segment.sealed or abandoned)
            if finished and not segment.sealed and end < length:
                log.warning(
                    "A worker stopped in the middle of writing a trace; its last %d bytes "
                    "in %s are incomplete and dropped",
                    length - end,
                    segment.path.name,
                )
                self.status.dropped_unreadable += 1
            if taken or finished:
                pending.append(_Pending(segment, key, end, finished))
        self.status.backlog_bytes = backlog
        return raws, pending

    def _parse(self, raws: list[bytes]) -> list[tuple[bytes, dict[str, Any]]]:
        lines: list[tuple[bytes, dict[str, Any]]] = []
        for raw in raws:
            if not raw:
                continue
            try:
                line = orjson.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict) or line.get("v") != RECORD_VERSION:
                self.status.dropped_unreadable += 1
                log.error("Dropped an unreadable trace from the spool (%d bytes)", len(raw))
                continue
            lines.append((raw, line))
        return lines

    def _write(self, lines: list[tuple[bytes, dict[str, Any]]]) -> bool:
        """Write a batch; True when every trace is stored or dropped for good."""
        try:
            self.destination.write(lines)
        except Exception as exc:  # noqa: BLE001 - whatever the destination raises
            outcome = "down" if len(lines) == 1 else self._write_one_by_one(lines)
            if outcome == "down":
                self._failing(exc)
                return False
            if outcome == "retry":
                return False
        else:
            self.status.exported += len(lines)
        if self.status.failing_since is not None:
            log.warning("Exporting traces again to %s", self.status.destination)
        self.status.failing_since = None
        self.status.error = None
        self._backoff = 0
        return True

    def _write_one_by_one(self, lines: list[tuple[bytes, dict[str, Any]]]) -> str:
        """After a failed batch: the traces that fail alone, while others succeed, are the
        cause; they get another try, then are dropped. "down" when none succeeds (the
        destination is down, not a trace), "retry" to try the batch again, else "done"."""
        rejected: list[tuple[dict[str, Any], Exception]] = []
        stored = 0
        for raw, line in lines:
            try:
                self.destination.write([(raw, line)])
            except Exception as exc:  # noqa: BLE001
                rejected.append((line, exc))
            else:
                stored += 1
        if not stored:
            return "down"
        for line, _ in rejected:
            trace_id = str(line.get("trace_id"))
            attempts = self._rejections[trace_id] = self._rejections.get(trace_id, 0) + 1
            if attempts < REJECT_ATTEMPTS:
                return "retry"
        for line, error in rejected:
            trace_id = str(line.get("trace_id"))
            self._rejections.pop(trace_id, None)
            self.status.dropped_rejected += 1
            log.error(
                "Dropped trace %s: %s refused it (%s)",
                trace_id,
                self.status.destination,
                type(error).__name__,
                exc_info=error,
            )
        self.status.exported += stored
        return "done"

    def _failing(self, exc: Exception) -> None:
        if self.status.failing_since is None:
            self.status.failing_since = time.time()
            log.error(
                "Cannot export traces to %s (%s); retrying, traces wait in %s",
                self.status.destination,
                type(exc).__name__,
                self.directory,
                exc_info=exc,
            )
        self.status.error = type(exc).__name__
        self._backoff += 1

    def _pause(self) -> float:
        if self._backoff:
            return BACKOFF_S[min(self._backoff, len(BACKOFF_S)) - 1]
        return IDLE_POLL_S

    def _producers_alive(self) -> bool:
        return spool.is_locked(self.directory / spool.PRODUCERS_LOCK)

    def _write_status(self) -> None:
        """Rewrite status.json when what it says changed; `updated` is when that was."""
        status = self.status.to_json()
        if status == self._written_status:
            return
        self._written_status = status
        path = self.directory / spool.STATUS_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps({**status, "updated": time.time()}))
        os.replace(temporary, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agent_service.observability.export")
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--mode", choices=("auto", "mlflow"), default="auto")
    parser.add_argument("--linger", type=float, default=3.0, help="seconds idle before exiting")
    parser.add_argument("--drain", type=float, default=20.0, help="seconds after SIGTERM")
    parser.add_argument("--cpus", default="", help="CPU numbers to run on, comma-separated")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.config.dictConfig(logging_config(args.log_level))
    if args.cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
    spool.prepare(args.spool)
    lock = spool.try_lock(args.spool / spool.EXPORTER_LOCK)
    if lock is None:
        return 0  # another export process serves this spool
    destination = destination_for(args.tracking_uri, args.mode)
    log.info(
        "Exporting traces from %s to %s: %s",
        args.spool,
        destination.target,
        destination.description,
    )
    exporter = Exporter(args.spool, destination, args.linger, args.drain)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        exporter.terminate()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        exporter.run()
    finally:
        destination.close()
        os.close(lock)
    return 0
