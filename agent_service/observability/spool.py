"""The spool: finished traces on their way from the workers to the export process, as files.

Layout of a spool directory (one per trace destination, see `spool_dir_for`):

    producers.lock            every process writing traces holds a shared lock on it
    exporter.lock             the export process holds it exclusively: one writer per store
    status.json               written by the export process: what it exported, dropped, why
    <pid>-<n>.open            the segment a worker is appending to (it holds a lock on it)
    <pid>-<n>.jsonl           a sealed segment: complete, waiting to be exported

A worker appends one line per trace to an in-memory buffer and writes the buffer to its open
segment every `FLUSH_INTERVAL_S` (one `write` call, no fsync: the spool survives a crashed
process, not a crashed machine). It seals the segment (renames it) once a second or at 8 MiB.
The export process reads open and sealed segments, writes what it read to the store in
batches and deletes a segment only once everything in it is stored: delivery is at least
once; the exporter skips traces the store already has, so a replay after a crash adds no
duplicates. A worker's unexported bytes are capped (`max_bytes`); past the cap a trace is
dropped, counted and said in the log, never queued without bound.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PRODUCERS_LOCK = "producers.lock"
EXPORTER_LOCK = "exporter.lock"
STATUS_FILE = "status.json"
OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".jsonl"
# A segment is sealed this long after it was opened, or when it reaches SEGMENT_BYTES.
SEGMENT_SECONDS = 1.0
SEGMENT_BYTES = 8 * 1024 * 1024


def spool_dir_for(destination: str, base: str = "") -> Path:
    """The spool directory of a trace destination: one per store, shared by every server on
    the machine that writes there (a SQLite store is named by its absolute path)."""
    key = destination
    if destination.startswith("sqlite:///"):
        key = "sqlite:///" + str(Path(destination.removeprefix("sqlite:///")).resolve())
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = (
        Path(base) if base else Path(tempfile.gettempdir()) / f"agent-service-traces-{os.getuid()}"
    )
    return root / digest


def prepare(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def try_lock(path: Path, shared: bool = False) -> int | None:
    """An open descriptor holding a lock on `path`, or None when someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def is_locked(path: Path) -> bool:
    """Whether another process holds a lock on `path` (shared or exclusive)."""
    fd = try_lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    sealed: bool

    @property
    def owner_pid(self) -> int:
        return int(self.path.name.split("-", 1)[0])


def segments(directory: Path) -> list[Segment]:
    """The segments in the spool, oldest first (by name: pid, then sequence)."""
    found: list[tuple[float, str, Segment]] = []
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith((SEALED_SUFFIX, OPEN_SUFFIX)):
                try:
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                segment = Segment(Path(entry.path), name.endswith(SEALED_SUFFIX))
                found.append((mtime, name, segment))
    found.sort(key=lambda item: (item[0], item[1]))
    return [segment for _, _, segment in found]


def writer_gone(segment: Segment) -> bool:
    """An open segment whose writer died without sealing it (its lock is free)."""
    try:
        return not is_locked(segment.path)
    except FileNotFoundError:
        return False


class SpoolWriter:
    """One process's side of the spool. Not thread-safe: the event loop calls it."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.dropped = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pid = os.getpid()
        self._sequence = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._written = 0
        # Sealed segments of ours the exporter may not have deleted yet, with their sizes.
        self._sealed: dict[Path, int] = {}
        self._pending_sealed = 0
        self._full = False
        prepare(directory)
        self._producer_fd = try_lock(directory / PRODUCERS_LOCK, shared=True)

    @property
    def pending_bytes(self) -> int:
        """Bytes of ours not yet exported, as far as we can tell without asking."""
        return self._pending_sealed + self._written + self._buffered

    def append(self, line: bytes) -> bool:
        """Queue one trace; False (and counted) when the spool is over its cap."""
        if self.pending_bytes + len(line) > self.max_bytes:
            self._refresh_pending()
            if self.pending_bytes + len(line) > self.max_bytes:
                self.dropped += 1
                if not self._full:
                    self._full = True
                    log.error(
                        "Traces are being DROPPED: %d MiB of traces are waiting for the export "
                        "process in %s (is it running? is the store reachable?). Counted in "
                        "agent_traces_dropped_total.",
                        self.max_bytes // (1024 * 1024),
                        self.directory,
                    )
                return False
            if self._full:
                self._full = False
                log.warning("Traces are being recorded again: the spool has room")
        self._buffer.append(line)
        self._buffered += len(line)
        return True

    def flush(self) -> None:
        """Write what is buffered to the open segment; seal it when it is old or big."""
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            fd = self._open_segment()
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._written += len(data)
        if self._fd is not None and (
            self._written >= SEGMENT_BYTES or time.monotonic() - self._opened_at >= SEGMENT_SECONDS
        ):
            self.seal()

    def seal(self) -> Path | None:
        """Close the open segment for export; returns its sealed path."""
        if self._fd is None or self._path is None:
            return None
        sealed = self._path.with_suffix(SEALED_SUFFIX)
        os.rename(self._path, sealed)
        os.close(self._fd)
        self._sealed[sealed] = self._written
        self._pending_sealed += self._written
        self._fd = None
        self._path = None
        self._written = 0
        return sealed

    def close(self) -> list[Path]:
        """Flush and seal; stop being a producer. Returns our segments not yet exported."""
        self.flush()
        self.seal()
        if self._producer_fd is not None:
            os.close(self._producer_fd)
            self._producer_fd = None
        self._refresh_pending()
        return list(self._sealed)

    def unexported(self) -> list[Path]:
        self._refresh_pending()
        return list(self._sealed)

    def _refresh_pending(self) -> None:
        for path in [path for path in self._sealed if not path.exists()]:
            self._pending_sealed -= self._sealed.pop(path)

    def _open_segment(self) -> int:
        if self._fd is not None:
            return self._fd
        if self._pid != os.getpid():  # forked since: our own name space
            self._pid = os.getpid()
            self._sequence = 0
        self._sequence += 1
        path = (
            self.directory / f"{self._pid}-{self._sequence:06d}-{os.urandom(3).hex()}{OPEN_SUFFIX}"
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        # The exporter takes an unsealed segment whose lock is free as left by a dead writer.
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        self._path = path
        self._opened_at = time.monotonic()
        return fd


def read_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Complete lines of a segment from `offset`; the offset after the last complete one."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return data[:end].split(b"\n"), offset + end + 1


def iter_sealed(directory: Path) -> Iterator[Path]:
    for segment in segments(directory):
        if segment.sealed:
            yield segment.path
