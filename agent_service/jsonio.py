"""JSON out, fast: orjson for everything we send, the standard library for what orjson
refuses (integers beyond 64 bits, which an agent's custom_outputs may hold)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
