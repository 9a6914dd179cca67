"""Writes traces straight into MLflow's SQLite store: the rows MLflow's `start_trace` and
`log_spans` would leave, for a batch of traces in one transaction.

MLflow's own export of one trace costs about 40 ms of CPU (71 SQL statements, 4 commits,
an IntegrityError and a rollback when spans arrive before the trace); the same rows written
here cost well under a millisecond. That depends on MLflow's schema, so this writer only
runs on a store whose alembic revision is one it was checked against (`KNOWN_REVISIONS`,
by `tests/test_trace_contract.py`); anything else goes through MLflow's own export.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mlflow.store.tracking.utils.trace_analytics import (
    PROMOTED_TRACE_METADATA_KEYS,
    analytics_columns_from_metadata,
    bounded_model_dimension,
    finite_float_or_none,
    validate_session_id,
    validate_trace_name,
)
from mlflow.tracing.constant import (
    GenAiSemconvKey,
    SpanAttributeKey,
    SpansLocation,
    TraceMetadataKey,
    TraceTagKey,
)
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
from mlflow.utils.uri import append_to_uri_path

from agent_service.observability.export.store_translation import stored_span
from agent_service.observability.mlflow_format import MlflowSpan, MlflowTrace

# Revisions of MLflow's tracking schema whose trace tables this writer knows. Add one only
# after `make test` passes tests/test_trace_contract.py against it.
KNOWN_REVISIONS = frozenset({"dc11669786a5"})  # mlflow 3.17

# MLflow bumps it on every span write; one start_trace and one log_spans leave 1.
_PAYLOAD_GENERATION = 1

_TRACE_INFO_COLUMNS = (
    "request_id",
    "experiment_id",
    "timestamp_ms",
    "execution_time_ms",
    "status",
    "client_request_id",
    "request_preview",
    "response_preview",
    "db_payload_generation",
    "trace_name",
    "session_id",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_input_tokens_above_1hr",
    "input_cost",
    "output_cost",
    "total_cost",
)
_SPAN_COLUMNS = (
    "trace_id",
    "experiment_id",
    "span_id",
    "parent_span_id",
    "name",
    "type",
    "status",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "content",
    "input_cost",
    "output_cost",
    "total_cost",
    "model_name",
    "model_provider",
)


def _insert(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    names = ", ".join(f'"{column}"' for column in columns)
    marks = ", ".join("?" for _ in columns)
    return f"{verb} INTO {table} ({names}) VALUES ({marks})"


_INSERT_TRACE = _insert("trace_info", _TRACE_INFO_COLUMNS)
_INSERT_TAG = _insert("trace_tags", ("request_id", "key", "value"))
_INSERT_METADATA = _insert("trace_request_metadata", ("request_id", "key", "value"))
_INSERT_SPAN = _insert("spans", _SPAN_COLUMNS)


class ExperimentGone(Exception):
    """The trace's experiment does not exist or was deleted: MLflow refuses such traces."""


def store_revision(path: str) -> str | None:
    """The alembic revision of a SQLite store (None when it has none yet)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
    return None if row is None else str(row[0])


@dataclass(slots=True)
class _Rows:
    traces: list[tuple[Any, ...]]
    tags: list[tuple[str, str, str]]
    metadata: list[tuple[str, str, str]]
    spans: list[tuple[Any, ...]]


class SqliteWriter:
    """One connection, one transaction per batch."""

    def __init__(self, path: str) -> None:
        self.path = path
        # isolation_level=None: we open and commit transactions ourselves.
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._artifact_roots: dict[str, str] = {}

    def close(self) -> None:
        self._db.close()

    def write(self, traces: Sequence[MlflowTrace]) -> None:
        """Store `traces`; those the store already has are left as they are (a replay after
        an interrupted export adds nothing). Raises `ExperimentGone` for a batch holding a
        trace of a deleted experiment (the caller isolates it)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = self._stored([trace.trace_id for trace in traces])
            fresh = [trace for trace in traces if trace.trace_id not in stored]
            rows = _Rows([], [], [], [])
            for trace in fresh:
                self._add(rows, trace)
            db.executemany(_INSERT_TRACE, rows.traces)
            db.executemany(_INSERT_TAG, rows.tags)
            db.executemany(_INSERT_METADATA, rows.metadata)
            db.executemany(_INSERT_SPAN, rows.spans)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _stored(self, trace_ids: list[str]) -> set[str]:
        marks = ", ".join("?" for _ in trace_ids)
        query = f"SELECT request_id FROM trace_info WHERE request_id IN ({marks})"  # noqa: S608
        return {row[0] for row in self._db.execute(query, trace_ids)}

    def _artifact_root(self, experiment_id: str) -> str:
        root = self._artifact_roots.get(experiment_id)
        if root is None:
            row = self._db.execute(
                "SELECT artifact_location, lifecycle_stage FROM experiments "
                "WHERE experiment_id = ?",
                (int(experiment_id),),
            ).fetchone()
            if row is None or row[1] != "active":
                raise ExperimentGone(experiment_id)
            root = self._artifact_roots[experiment_id] = str(row[0])
        return root

    def _add(self, rows: _Rows, trace: MlflowTrace) -> None:
        trace_id = trace.trace_id
        experiment_id = int(trace.experiment_id)
        trace_id_b64 = trace.trace_id_b64
        stored = [stored_span(span, trace_id_b64) for span in trace.spans]
        from_spans = _SpanFacts.of(trace.spans, [attributes for attributes, _ in stored])

        # start_trace: the trace row with the analytics columns MLflow promotes out of the
        # metadata, the tags, the metadata minus what was promoted.
        metadata = dict(trace.metadata)
        columns: dict[str, Any] = analytics_columns_from_metadata(metadata)
        for key in PROMOTED_TRACE_METADATA_KEYS:
            metadata.pop(key, None)
        metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
        tags = dict(trace.tags)
        trace_name = validate_trace_name(tags.pop(TraceTagKey.TRACE_NAME, None))
        tags[MLFLOW_ARTIFACT_LOCATION] = append_to_uri_path(  # type: ignore[no-untyped-call]
            self._artifact_root(trace.experiment_id), "traces", trace_id, "artifacts"
        )
        # log_spans: what it derives from the spans for a trace start_trace finalized.
        if from_spans.session_id and columns.get("session_id") is None:
            columns["session_id"] = from_spans.session_id
        if from_spans.user_id and TraceMetadataKey.TRACE_USER not in metadata:
            metadata[TraceMetadataKey.TRACE_USER] = from_spans.user_id
        tags[TraceTagKey.SPANS_LOCATION] = SpansLocation.TRACKING_STORE.value
        if from_spans.trace_name:
            trace_name = from_spans.trace_name
        tags.update(from_spans.tags)

        columns.update(
            request_id=trace_id,
            experiment_id=experiment_id,
            timestamp_ms=trace.request_time_ms,
            execution_time_ms=trace.execution_duration_ms,
            status=trace.state,
            client_request_id=trace.client_request_id,
            request_preview=trace.request_preview,
            response_preview=trace.response_preview,
            db_payload_generation=_PAYLOAD_GENERATION,
            trace_name=trace_name,
        )
        rows.traces.append(tuple(columns.get(column) for column in _TRACE_INFO_COLUMNS))
        rows.tags.extend((trace_id, key, value) for key, value in tags.items())
        rows.metadata.extend((trace_id, key, value) for key, value in metadata.items())
        for span, (attributes, content) in zip(trace.spans, stored, strict=True):
            rows.spans.append(_span_row(trace_id, experiment_id, span, attributes, content))


def _span_row(
    trace_id: str,
    experiment_id: int,
    span: MlflowSpan,
    attributes: dict[str, str],
    content: str,
) -> tuple[Any, ...]:
    cost = _json_dict(attributes.get(SpanAttributeKey.LLM_COST))
    return (
        trace_id,
        experiment_id,
        span.span_id,
        span.parent_id,
        span.name,
        _loads(attributes.get(SpanAttributeKey.SPAN_TYPE)),
        span.status,
        span.start_ns,
        span.end_ns,
        content,
        finite_float_or_none(cost.get("input_cost")),
        finite_float_or_none(cost.get("output_cost")),
        finite_float_or_none(cost.get("total_cost")),
        bounded_model_dimension(_string_or_raw(attributes.get(SpanAttributeKey.MODEL))),
        bounded_model_dimension(_string_or_raw(attributes.get(SpanAttributeKey.MODEL_PROVIDER))),
    )


@dataclass(slots=True)
class _SpanFacts:
    """What `log_spans` reads off spans: the session and user (OpenTelemetry conventions),
    trace tags carried as root-span attributes."""

    session_id: str | None
    user_id: Any
    trace_name: str | None
    tags: dict[str, str]

    @classmethod
    def of(cls, spans: Iterable[MlflowSpan], stored: Iterable[dict[str, str]]) -> _SpanFacts:
        session_id: str | None = None
        user_id: Any = None
        tags: dict[str, str] = {}
        trace_name: str | None = None
        prefix = SpanAttributeKey.TRACE_TAG_PREFIX
        for span, attributes in zip(spans, stored, strict=True):
            if session_id is None and (
                value := attributes.get(SpanAttributeKey.SESSION_ID)
                or attributes.get(GenAiSemconvKey.CONVERSATION_ID)
            ):
                session_id = validate_session_id(_string_or_raw(value))
            if user_id is None and (value := attributes.get("user.id")):
                user_id = _string_or_raw(value)
            if span.parent_id is None:
                for key, value in attributes.items():
                    if key.startswith(prefix):
                        tag = key[len(prefix) :]
                        if tag == TraceTagKey.TRACE_NAME:
                            trace_name = validate_trace_name(str(_string_or_raw(value)))
                        else:
                            tags[tag] = str(_string_or_raw(value))
        return cls(session_id, user_id, trace_name, tags)


def _string_or_raw(value: str | None) -> Any:
    """sqlalchemy_store._try_parse_json_string: the string a JSON value encodes, else the
    value itself."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, str) else value


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _json_dict(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
