"""JSON out, fast: orjson for everything we send, the standard library for what orjson
refuses (integers beyond 64 bits, which an agent's custom_outputs may hold); and, for the
last event of a stream that failed, an encoding that cannot fail."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# Deeper than this, what an agent produced is cut (a request may nest 64 levels).
_LENIENT_DEPTH = 64


def encodable(value: Any) -> Any:
    """`value` itself when JSON can carry it; else a copy where what it cannot carry (an
    object that is not JSON, nesting past 64 levels) is a string saying so. For the terminal
    event of a stream, which must go out whatever the answer so far holds."""
    try:
        dumps(value)
    except (TypeError, ValueError, RecursionError):
        return _encodable(value, _LENIENT_DEPTH)
    return value


def _encodable(value: Any, depth: int) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, int) or -(2**63) <= value < 2**64 else str(value)
    if depth <= 0:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {str(key): _encodable(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item, depth - 1) for item in value]
    return f"<{type(value).__name__}: not JSON>"
