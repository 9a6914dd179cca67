"""A request's trace as plain data: spans recorded in the worker, serialised once for export.

Nothing here touches MLflow's span SDK: a span is a small slotted object, its inputs and
outputs stay Python values until the trace is finished and written, as one line, to the
spool (`spool.py`). The exporter turns a line into what MLflow itself would have stored
(`mlflow_format.py`).

Identifiers follow MLflow's v3 format: the trace id is `tr-` and the 32 hex digits of a
128-bit OpenTelemetry trace id; span ids are 64-bit. They come from a random generator of
our own, seeded from the kernel and re-seeded in every forked child, so workers forked from
one master never share a sequence.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from typing import Any, Literal

import orjson

from agent_service.observability.trace_bounds import bounded

# Bumped when the line format changes; the exporter refuses lines it does not know.
RECORD_VERSION = 1

SpanStatus = Literal["UNSET", "OK", "ERROR"]

# Ids must be unique, not secret (MLflow makes its own with `random` too).
_ids = random.Random(os.urandom(16))  # noqa: S311


def _reseed_after_fork() -> None:
    _ids.seed(os.urandom(16))


os.register_at_fork(after_in_child=_reseed_after_fork)


def new_trace_id() -> int:
    """A 128-bit OpenTelemetry trace id (never 0, which OpenTelemetry treats as invalid)."""
    return _ids.getrandbits(128) or 1


def new_span_id() -> int:
    return _ids.getrandbits(64) or 1


def mlflow_trace_id(otel_trace_id: int) -> str:
    """MLflow's v3 trace id for an OpenTelemetry trace id."""
    return f"tr-{otel_trace_id:032x}"


class SpanRecord:
    """One finished (or still open) span. `attributes` hold Python values; `encoded` spans
    (spans MLflow's own SDK recorded inside the request) hold MLflow's JSON strings."""

    __slots__ = (
        "attributes",
        "encoded",
        "end_ns",
        "events",
        "name",
        "parent_id",
        "span_id",
        "span_type",
        "start_ns",
        "status",
        "status_message",
    )

    def __init__(
        self,
        name: str,
        span_type: str,
        parent_id: int | None,
        *,
        span_id: int | None = None,
        start_ns: int | None = None,
    ) -> None:
        self.span_id = span_id if span_id is not None else new_span_id()
        self.parent_id = parent_id
        self.name = name
        self.span_type = span_type
        self.start_ns = start_ns if start_ns is not None else time.time_ns()
        self.end_ns: int | None = None
        self.status: SpanStatus = "UNSET"
        self.status_message = ""
        self.attributes: dict[str, Any] = {}
        self.events: list[dict[str, Any]] | None = None
        self.encoded = False

    def end(self, status: SpanStatus = "OK", message: str = "") -> None:
        if self.end_ns is None:
            self.end_ns = time.time_ns()
            self.status = status
            self.status_message = message

    def add_event(self, name: str, attributes: dict[str, Any]) -> None:
        if self.events is None:
            self.events = []
        self.events.append({"name": name, "time": time.time_ns(), "attributes": attributes})

    def to_line_dict(self, *, fragments: bool = False) -> dict[str, Any]:
        """The span as the spool line holds it: each input, output and other attribute of a
        span we recorded cut to `trace_bounds.MAX_VALUE_CHARS` (with `fragments`, the ones
        encoded to learn their size stay encoded)."""
        attributes = self.attributes
        if not self.encoded:
            attributes = {
                key: bounded(value, encode, fragment=fragments) for key, value in attributes.items()
            }
        return {
            "id": f"{self.span_id:016x}",
            "parent": None if self.parent_id is None else f"{self.parent_id:016x}",
            "name": self.name,
            "type": self.span_type,
            "start": self.start_ns,
            "end": self.end_ns,
            "status": self.status,
            "message": self.status_message,
            "attributes": attributes,
            "events": self.events or [],
            "encoded": self.encoded,
        }


@dataclasses.dataclass(slots=True)
class TraceRecord:
    """Everything MLflow's trace info holds that the request decided, plus the spans."""

    otel_trace_id: int
    experiment_id: str
    # Trace metadata set at the start (request id, task, model, session, user, LoggedModel,
    # MLflow's environment metadata) and by the agent (`mlflow.update_current_trace`).
    metadata: dict[str, str]
    spans: list[SpanRecord]
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    # What `mlflow.update_current_trace` may override; None = MLflow's default.
    state: str | None = None
    client_request_id: str | None = None
    request_preview: str | None = None
    response_preview: str | None = None
    # MLflow's form of the id, made once (a request reads it several times).
    trace_id: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.trace_id = mlflow_trace_id(self.otel_trace_id)

    def to_line_dict(self, *, fragments: bool = False) -> dict[str, Any]:
        return {
            "v": RECORD_VERSION,
            "trace_id": self.trace_id,
            "experiment_id": self.experiment_id,
            "metadata": self.metadata,
            "tags": self.tags,
            "state": self.state,
            "client_request_id": self.client_request_id,
            "request_preview": self.request_preview,
            "response_preview": self.response_preview,
            "spans": [span.to_line_dict(fragments=fragments) for span in self.spans],
        }

    def to_line(self) -> bytes:
        """The spool line: one JSON document and a newline."""
        try:
            return orjson.dumps(
                self.to_line_dict(fragments=True),
                default=jsonable,
                option=_ORJSON_OPTIONS | orjson.OPT_APPEND_NEWLINE,
            )
        except TypeError:  # an integer beyond 64 bits: the standard library, no fragments
            return encode(self.to_line_dict()) + b"\n"


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def encode(value: Any) -> bytes:
    """JSON as MLflow's `TraceJSONEncoder` would write the same values, at orjson's speed;
    the standard library for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=jsonable, option=_ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(value, default=jsonable, ensure_ascii=False).encode()


def jsonable(value: Any) -> Any:
    """What MLflow's `TraceJSONEncoder.default` makes of a value JSON cannot hold: a pydantic
    model's dump, a dataclass's fields, else its `str()`. (MLflow's own version also tries to
    import llama_index for every such value; a failed import on every call is costly.)"""
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and _is_pydantic(value):
        return model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        except Exception:  # noqa: BLE001 - MLflow falls back to str() here too
            return str(value)
    return str(value)


def _is_pydantic(value: Any) -> bool:
    return any(
        cls.__name__ == "BaseModel" and cls.__module__.startswith("pydantic")
        for cls in type(value).__mro__
    )
