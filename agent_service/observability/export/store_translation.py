"""What MLflow's SQL store adds to a span when it stores it (`translate_span_when_storing`):
attributes derived from other conventions (OpenTelemetry GenAI, OpenInference, ...), the
model name, the message format, the cost.

MLflow's own function looks at every attribute of every span through a dozen translators:
about 50 µs a span. Spans that hold only the attributes our recorder writes need just one
of its rules (the model named in the span's inputs or outputs); every other span goes
through MLflow's function. `tests/test_trace_contract.py` checks the shortcut against it.
"""

from __future__ import annotations

import json
from typing import Any

from mlflow.tracing.constant import SpanAttributeKey
from mlflow.tracing.otel.translation import translate_span_when_storing

from agent_service.observability.mlflow_format import MlflowSpan, dump_attribute, unicode_json

# The attributes our recorder and MLflow's span SDK write on the spans we record.
OUR_ATTRIBUTES = frozenset(
    {
        SpanAttributeKey.EXPERIMENT_ID,
        SpanAttributeKey.REQUEST_ID,
        SpanAttributeKey.SPAN_TYPE,
        SpanAttributeKey.INPUTS,
        SpanAttributeKey.OUTPUTS,
        SpanAttributeKey.CHAT_TOOLS,
        SpanAttributeKey.CHAT_USAGE,
        SpanAttributeKey.LOG_LEVEL,
        "model",
        "model_name",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "agent_service.end_reason",
        "agent_service.error_code",
        "agent_service.error_message",
    }
)


_JSON_STARTS = frozenset("{[\\ ")


class _AsSpan:
    """The one method of MLflow's `Span` that its translation calls."""

    def __init__(self, span_dict: dict[str, Any]) -> None:
        self._dict = span_dict

    def to_dict(self) -> dict[str, Any]:
        return {**self._dict, "attributes": dict(self._dict["attributes"])}


def stored_span(span: MlflowSpan, trace_id_b64: str) -> tuple[dict[str, str], str]:
    """The span's attributes and its JSON as MLflow's SQL store writes them (`spans.content`)."""
    if span.attributes.keys() <= OUR_ATTRIBUTES:
        attributes = _sanitized(span.attributes)
        if SpanAttributeKey.MODEL not in attributes and (model := _model_named(attributes)):
            attributes[SpanAttributeKey.MODEL] = dump_attribute(model)
        if attributes == span.attributes:
            return attributes, span.json(trace_id_b64)
        span_dict = span.to_dict(trace_id_b64)
        span_dict["attributes"] = attributes
    else:
        span_dict = translate_span_when_storing(_AsSpan(span.to_dict(trace_id_b64)))  # type: ignore[arg-type]
    return span_dict["attributes"], unicode_json(span_dict)


def _sanitized(attributes: dict[str, str]) -> dict[str, str]:
    """translation.sanitize_attributes: a value that encodes a string which is itself JSON
    (a string, an object, an array) loses one layer of encoding. Only values that encode a
    string can, so only those are decoded."""
    result = dict(attributes)
    for key, value in attributes.items():
        # Only an encoded string whose text starts like JSON (an object, an array, a string,
        # or white space) can be unwrapped.
        if len(value) < 3 or value[0] != '"' or value[1] not in _JSON_STARTS:
            continue
        try:
            inner = json.loads(value)
            if isinstance(inner, str) and isinstance(json.loads(inner), str | dict | list):
                result[key] = inner
        except ValueError:
            continue
    return result


def _model_named(attributes: dict[str, str]) -> str | None:
    """translation._get_model_name's last two rules: a `model` field of the inputs, else
    of the outputs (no translator reads our attributes)."""
    for key in (SpanAttributeKey.INPUTS, SpanAttributeKey.OUTPUTS):
        encoded = attributes.get(key)
        if not encoded or '"model"' not in encoded:
            continue
        try:
            value = json.loads(encoded)
        except ValueError:
            continue
        if isinstance(value, dict) and (model := value.get("model")):
            return model if isinstance(model, str) else None
    return None
