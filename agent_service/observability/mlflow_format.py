"""A recorded trace as MLflow's own client would have sent it: span dictionaries with their
attributes encoded the way MLflow encodes them, and the trace info MLflow's span processor
computes when the root span ends (state, times, previews, token usage, size statistics,
the request and response as metadata).

Pure functions of the recorded line, shared by `databricks_options.return_trace` (in the
worker) and every exporter (in the export process). Each rule below names the MLflow code it
follows; `tests/test_trace_contract.py` checks the result against MLflow's own export.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from mlflow.entities import TraceInfo, TraceLocation, TraceState
from mlflow.tracing.constant import (
    MAX_CHARS_IN_TRACE_INFO_METADATA,
    MAX_CHARS_IN_TRACE_INFO_TAGS_KEY,
    MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE,
    TRUNCATION_SUFFIX,
    SpanAttributeKey,
    TraceMetadataKey,
    TraceSizeStatsKey,
    TraceTagKey,
)
from mlflow.tracing.utils import SpanAggregationNode, aggregate_usage_from_span_nodes
from mlflow.tracing.utils.default_log_level import default_log_level_for_span_type
from mlflow.tracing.utils.truncation import _get_truncated_preview

from agent_service.observability.trace_record import jsonable

# MLflow's span log level for a span that recorded an exception (`SpanLogLevel.ERROR`).
_ERROR_LOG_LEVEL = 40
_STATUS_CODE_NAMES = {
    "OK": "STATUS_CODE_OK",
    "ERROR": "STATUS_CODE_ERROR",
    "UNSET": "STATUS_CODE_UNSET",
}


# `json.dumps(value, default=jsonable, ensure_ascii=False)`, the same text, without making a
# new encoder for every call (a trace dumps about thirty values).
_UNICODE_JSON = json.JSONEncoder(default=jsonable, ensure_ascii=False)


def unicode_json(value: Any) -> str:
    """JSON with non-ASCII kept (what a SQL store writes), odd values as MLflow's
    `TraceJSONEncoder` writes them."""
    return _UNICODE_JSON.encode(value)


# MLflow's `dump_span_attribute_value`.
dump_attribute = unicode_json


@dataclasses.dataclass(slots=True)
class MlflowSpan:
    """One span as MLflow's `Span.to_dict()` describes it, with the parts stores index."""

    span_id: str  # 16 hex digits
    parent_id: str | None
    name: str
    span_type: str
    status: str  # OK, ERROR or UNSET
    status_message: str
    start_ns: int
    end_ns: int | None
    # MLflow-encoded: every value is a JSON document.
    attributes: dict[str, str]
    events: list[dict[str, Any]]
    # `to_dict()` as JSON with non-ASCII kept (what a SQL store writes), made once.
    _json: str | None = None

    def json(self, trace_id_b64: str) -> str:
        if self._json is None:
            self._json = unicode_json(self.to_dict(trace_id_b64))
        return self._json

    def to_dict(self, trace_id_b64: str) -> dict[str, Any]:
        """MLflow's `Span.to_dict()`."""
        return {
            "trace_id": trace_id_b64,
            "span_id": _b64_hex(self.span_id),
            "parent_span_id": None if self.parent_id is None else _b64_hex(self.parent_id),
            "name": self.name,
            "start_time_unix_nano": self.start_ns,
            "end_time_unix_nano": self.end_ns,
            "events": self.events,
            "status": {"code": _STATUS_CODE_NAMES[self.status], "message": self.status_message},
            "attributes": self.attributes,
            "links": [],
        }


@dataclasses.dataclass(slots=True)
class MlflowTrace:
    """A finished trace as MLflow's exporter hands it to a store."""

    trace_id: str
    experiment_id: str
    request_time_ms: int
    execution_duration_ms: int | None
    state: str
    client_request_id: str | None
    request_preview: str | None
    response_preview: str | None
    metadata: dict[str, str]
    tags: dict[str, str]
    spans: list[MlflowSpan]

    @property
    def trace_id_b64(self) -> str:
        return _b64_hex(self.trace_id.removeprefix("tr-"))

    @property
    def root(self) -> MlflowSpan:
        return next(span for span in self.spans if span.parent_id is None)

    def span_dicts(self) -> list[dict[str, Any]]:
        trace_id = self.trace_id_b64
        return [span.to_dict(trace_id) for span in self.spans]

    def trace_info(self) -> TraceInfo:
        """MLflow's entity for the trace info."""
        return TraceInfo(
            trace_id=self.trace_id,
            trace_location=TraceLocation.from_experiment_id(self.experiment_id),
            request_time=self.request_time_ms,
            execution_duration=self.execution_duration_ms,
            state=TraceState(self.state),
            client_request_id=self.client_request_id,
            request_preview=self.request_preview,
            response_preview=self.response_preview,
            trace_metadata=dict(self.metadata),
            tags=dict(self.tags),
        )

    def to_dict(self) -> dict[str, Any]:
        """MLflow's `Trace.to_dict()`: what `mlflow.get_trace(...).to_dict()` would give
        (the info as `info_dict` makes it: MLflow's own goes through protobuf, a fifth of
        a millisecond a trace)."""
        return {"info": info_dict(self), "data": {"spans": self.span_dicts()}}


def from_line(line: Mapping[str, Any]) -> MlflowTrace:
    """The trace MLflow's exporter would hand to a store for a recorded trace (a line of the
    spool, parsed, or `TraceRecord.to_line_dict()`)."""
    trace_id: str = line["trace_id"]
    experiment_id: str = line["experiment_id"]
    spans = [_span(raw, trace_id, experiment_id) for raw in line["spans"]]
    root = next(span for span in spans if span.parent_id is None)
    metadata = {key: str(value) for key, value in line["metadata"].items()}
    # BaseMlflowSpanProcessor._update_trace_info, when the root span ends.
    metadata[TraceMetadataKey.INPUTS] = _truncate(root.attributes.get(SpanAttributeKey.INPUTS))
    metadata[TraceMetadataKey.OUTPUTS] = _truncate(root.attributes.get(SpanAttributeKey.OUTPUTS))
    if usage := aggregate_usage_from_span_nodes(list(_usage_nodes(spans))):
        metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(usage)
    # _get_basic_trace_tags names the trace; tags the agent set later win.
    tags = {TraceTagKey.TRACE_NAME: root.name, **line["tags"]}
    state = line["state"] or ("ERROR" if root.status == "ERROR" else "OK")
    end_ns = root.end_ns
    trace = MlflowTrace(
        trace_id=trace_id,
        experiment_id=experiment_id,
        request_time_ms=root.start_ns // 1_000_000,
        execution_duration_ms=None if end_ns is None else (end_ns - root.start_ns) // 1_000_000,
        state=state,
        client_request_id=line["client_request_id"],
        # _Trace.to_mlflow_trace: previews the agent did not set are cut from the root's
        # inputs and outputs.
        request_preview=line["request_preview"]
        or _get_truncated_preview(root.attributes.get(SpanAttributeKey.INPUTS), role="user"),
        response_preview=line["response_preview"]
        or _get_truncated_preview(root.attributes.get(SpanAttributeKey.OUTPUTS), role="assistant"),
        metadata=metadata,
        tags=tags,
        spans=spans,
    )
    _add_size_stats(trace)
    return trace


def _span(raw: Mapping[str, Any], trace_id: str, experiment_id: str) -> MlflowSpan:
    events = [
        {"name": event["name"], "time_unix_nano": event["time"], "attributes": event["attributes"]}
        for event in raw["events"]
    ]
    if raw["encoded"]:
        attributes = dict(raw["attributes"])
    else:
        # The order MLflow sets them in: the experiment (root span only), the trace, the
        # type, then what the span recorded, then the log level when the span ends.
        attributes = {}
        if raw["parent"] is None:
            attributes[SpanAttributeKey.EXPERIMENT_ID] = dump_attribute(experiment_id)
        attributes[SpanAttributeKey.REQUEST_ID] = dump_attribute(trace_id)
        attributes[SpanAttributeKey.SPAN_TYPE] = dump_attribute(raw["type"])
        for key, value in raw["attributes"].items():
            attributes[key] = dump_attribute(value)
        failed = any(event["name"] == "exception" for event in events)
        level = _ERROR_LOG_LEVEL if failed else int(default_log_level_for_span_type(raw["type"]))
        attributes[SpanAttributeKey.LOG_LEVEL] = dump_attribute(level)
    status = raw["status"]
    # LiveSpan.end: a span that did not fail ends OK.
    if status != "ERROR" and raw["end"] is not None and not raw["encoded"]:
        status = "OK"
    return MlflowSpan(
        span_id=raw["id"],
        parent_id=raw["parent"],
        name=raw["name"],
        span_type=raw["type"],
        status=status,
        status_message=raw["message"],
        start_ns=raw["start"],
        end_ns=raw["end"],
        attributes=attributes,
        events=events,
    )


def _usage_nodes(spans: Iterable[MlflowSpan]) -> Iterable[SpanAggregationNode]:
    for span in spans:
        usage = span.attributes.get(SpanAttributeKey.CHAT_USAGE)
        data = json.loads(usage) if usage is not None else None
        yield SpanAggregationNode(
            span_id=span.span_id,
            parent_id=span.parent_id,
            data=data if isinstance(data, dict) else None,
        )


def _truncate(value: str | None) -> str:
    """BaseMlflowSpanProcessor._truncate_metadata."""
    if not value:
        return ""
    if len(value) > MAX_CHARS_IN_TRACE_INFO_METADATA:
        return (
            value[: MAX_CHARS_IN_TRACE_INFO_METADATA - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX
        )
    return value


def _add_size_stats(trace: MlflowTrace) -> None:
    """mlflow.tracing.utils.add_size_stats_to_trace_metadata, done at export. MLflow
    measures `json.dumps(span.to_dict(), cls=TraceJSONEncoder)` (ASCII-escaped) per span and
    `Trace(info, TraceData([])).to_json()`; the same lengths, computed without MLflow's
    round trip through protobuf (a millisecond a trace)."""
    trace_id = trace.trace_id_b64
    sizes = sorted(ascii_json_length(span.json(trace_id)) for span in trace.spans)
    total = sum(sizes) + info_json_length(trace) + (len(sizes) - 1) * 2
    stats = {
        TraceSizeStatsKey.TOTAL_SIZE_BYTES: total,
        TraceSizeStatsKey.NUM_SPANS: len(sizes),
        TraceSizeStatsKey.MAX_SPAN_SIZE_BYTES: sizes[-1],
        TraceSizeStatsKey.P25_SPAN_SIZE_BYTES: int(_percentile(sizes, 0.25)),
        TraceSizeStatsKey.P50_SPAN_SIZE_BYTES: int(_percentile(sizes, 0.50)),
        TraceSizeStatsKey.P75_SPAN_SIZE_BYTES: int(_percentile(sizes, 0.75)),
    }
    trace.metadata[TraceMetadataKey.SIZE_STATS] = json.dumps(stats)
    trace.metadata[TraceMetadataKey.SIZE_BYTES] = str(total)


def ascii_json_length(text: str) -> int:
    """The length `json.dumps(..., ensure_ascii=True)` gives for what `ensure_ascii=False`
    wrote as `text`: each character from DEL up becomes a 6-character escape, 12 beyond the
    Basic Multilingual Plane (a surrogate pair); control characters are escaped either way."""
    if text.isascii() and "\x7f" not in text:
        return len(text)
    length = len(text)
    below_128 = len(text.encode("ascii", "ignore"))
    astral = len(text.encode("utf-16-le", "surrogatepass")) // 2 - length
    escaped_bmp = length - below_128 - astral + text.count("\x7f")
    return length + 5 * escaped_bmp + 11 * astral


def info_json_length(trace: MlflowTrace) -> int:
    """len(Trace(info, TraceData([])).to_json())."""
    return len(json.dumps({"info": info_dict(trace), "data": {"spans": []}}))


def info_dict(trace: MlflowTrace) -> dict[str, Any]:
    """`TraceInfo.to_dict()` without its round trip through protobuf: protobuf's JSON form
    of TraceInfoV3 (empty fields left out), metadata and tags cut as `to_proto` cuts them,
    the duration in milliseconds last."""
    info: dict[str, Any] = {"trace_id": trace.trace_id}
    if trace.client_request_id:
        info["client_request_id"] = trace.client_request_id
    info["trace_location"] = {
        "type": "MLFLOW_EXPERIMENT",
        "mlflow_experiment": {"experiment_id": trace.experiment_id},
    }
    if trace.request_preview:
        info["request_preview"] = trace.request_preview
    if trace.response_preview:
        info["response_preview"] = trace.response_preview
    info["request_time"] = _timestamp_json(trace.request_time_ms)
    info["state"] = trace.state
    if trace.metadata:
        info["trace_metadata"] = {
            key[:MAX_CHARS_IN_TRACE_INFO_METADATA]: value[:MAX_CHARS_IN_TRACE_INFO_METADATA]
            for key, value in trace.metadata.items()
        }
    if trace.tags:
        info["tags"] = {
            key[:MAX_CHARS_IN_TRACE_INFO_TAGS_KEY]: value[:MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE]
            for key, value in trace.tags.items()
        }
    if trace.execution_duration_ms is not None:
        info["execution_duration_ms"] = trace.execution_duration_ms
    return info


def _timestamp_json(milliseconds: int) -> str:
    """protobuf's Timestamp.ToJsonString for a time in milliseconds."""
    seconds, millis = divmod(milliseconds, 1000)
    text = _utc_seconds(seconds)
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


@functools.lru_cache(maxsize=16)
def _utc_seconds(seconds: int) -> str:
    # Traces of the same second share the formatted time.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _percentile(sorted_data: list[int], percentile: float) -> float:
    """mlflow.tracing.utils._calculate_percentile."""
    n = len(sorted_data)
    index = percentile * (n - 1)
    lower = int(index)
    upper = lower + 1
    if upper >= n:
        return sorted_data[-1]
    weight = index - lower
    return sorted_data[lower] * (1 - weight) + sorted_data[upper] * weight


def _b64_hex(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()
