"""Where the export process writes, and how: the cheapest correct path per destination.

- `sqlite:///…`: MLflow's rows written with `sqlite3`, one transaction a batch
  (`sqlite_writer.py`);
- `http(s)://…`, a tracking server: `StartTraceV3` per trace, concurrently, then one OTLP
  request for the spans of the whole batch (`rest_writer.py`);
- `databricks`, `databricks://profile`: MLflow's own three calls a trace, 8 traces at once,
  host credentials resolved once (`databricks_writer.py`);
- anything else: MLflow's own export, still in the export process, off the serving workers.

Every batched path depends on what MLflow's client computes for a trace (`mlflow_format.py`)
and the SQLite one on MLflow's schema, so they run only for the MLflow version and store
schema they were checked against (an alembic revision in `KNOWN_REVISIONS`); otherwise, for
other stores, and for a trace holding base64 attachments (MLflow extracts those into
separate files), the export goes through MLflow's own code (`mlflow_replay.py`). The log says
once which path is used and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import mlflow
import mlflow.store
from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES, MLFLOW_SQL_TRACE_ROLLUPS_ENABLED

from agent_service.observability.export.databricks_writer import DatabricksWriter
from agent_service.observability.export.mlflow_replay import MlflowReplay
from agent_service.observability.export.rest_writer import RestWriter, SpanLoggingUnsupported
from agent_service.observability.export.sqlite_writer import (
    KNOWN_REVISIONS,
    SqliteWriter,
    store_revision,
)
from agent_service.observability.mlflow_format import MlflowTrace, from_line
from agent_service.observability.redaction import redact_uri

log = logging.getLogger(__name__)

Line = tuple[bytes, dict[str, Any]]


class Destination(Protocol):
    target: str
    description: str

    def write(self, lines: Sequence[Line]) -> None:
        """Store every trace of the batch, or raise (nothing is then taken off the spool)."""

    def close(self) -> None: ...


class TraceWriter(Protocol):
    def write(self, traces: Sequence[MlflowTrace]) -> None: ...

    def close(self) -> None: ...


class Batched:
    """A batched writer, with MLflow's own export for the traces it must not take."""

    def __init__(self, target: str, description: str, writer: TraceWriter, uri: str) -> None:
        self.target = target
        self.description = description
        self._writer: TraceWriter | None = writer
        self._uri = uri
        self._replay: MlflowReplay | None = None

    def write(self, lines: Sequence[Line]) -> None:
        if self._writer is None:
            self._replayed([line for _, line in lines])
            return
        batched = [line for raw, line in lines if not needs_mlflow(raw)]
        if batched:
            try:
                self._writer.write([from_line(line) for line in batched])
            except SpanLoggingUnsupported as exc:
                log.warning(
                    "Traces go through MLflow's own export from now on, which is slower: %s",
                    exc,
                )
                self.description = f"{MlflowReplay.description}: {exc}"
                self._writer.close()
                self._writer = None
                self._replayed(batched)
        if len(batched) < len(lines):
            self._replayed([line for raw, line in lines if needs_mlflow(raw)])

    def _replayed(self, lines: list[dict[str, Any]]) -> None:
        if self._replay is None:
            self._replay = MlflowReplay(self._uri)
        self._replay.write(lines)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._replay is not None:
            self._replay.close()


class Replayed:
    def __init__(self, target: str, uri: str, reason: str) -> None:
        self.target = target
        self.description = f"{MlflowReplay.description}: {reason}"
        self._replay = MlflowReplay(uri)

    def write(self, lines: Sequence[Line]) -> None:
        self._replay.write([line for _, line in lines])

    def close(self) -> None:
        self._replay.close()


def needs_mlflow(raw: bytes) -> bool:
    """A trace with a base64 data URI, which MLflow would extract into an attachment."""
    return b";base64," in raw and b"data:" in raw


@lru_cache(maxsize=1)
def installed_schema_revision() -> str | None:
    """The newest tracking-store schema revision the installed MLflow knows: it names the
    MLflow version whose export semantics the batched writers follow."""
    from alembic.script import ScriptDirectory

    migrations = Path(mlflow.store.__file__).parent / "db_migrations"
    head: str | None = ScriptDirectory(str(migrations)).get_current_head()
    return head


def destination_for(uri: str, mode: str = "auto") -> Destination:
    target = redact_uri(uri)
    if mode == "mlflow":
        return Replayed(target, uri, "asked for (--mode mlflow)")
    head = installed_schema_revision()
    if head not in KNOWN_REVISIONS:
        return _fallback(
            target,
            uri,
            f"MLflow {mlflow.__version__} (schema {head}) is not a version the batched "
            "writers were checked against",
        )
    rollups = MLFLOW_SQL_TRACE_ROLLUPS_ENABLED.get()  # type: ignore[no-untyped-call]
    workspaces = MLFLOW_ENABLE_WORKSPACES.get()  # type: ignore[no-untyped-call]
    if rollups or workspaces:
        return _fallback(target, uri, "MLflow's trace rollups or workspaces are on")
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        revision = store_revision(path)
        if revision not in KNOWN_REVISIONS:
            return _fallback(
                target, uri, f"the store's schema revision {revision} is not one we know"
            )
        return Batched(
            target,
            f"batched SQLite writer (schema {revision})",
            SqliteWriter(path),
            uri,
        )
    if uri.startswith(("http://", "https://")):
        return Batched(
            target, "batched REST writer (one OTLP request a batch)", RestWriter(uri), uri
        )
    if uri == "databricks" or uri.startswith("databricks://"):
        return Batched(
            target,
            "Databricks writer (MLflow's calls, 8 traces at once, credentials resolved once)",
            DatabricksWriter(uri),
            uri,
        )
    return _fallback(target, uri, "no batched writer for this kind of store")


def _fallback(target: str, uri: str, reason: str) -> Destination:
    log.warning("Traces go through MLflow's own export, which is slower: %s", reason)
    return Replayed(target, uri, reason)
