"""How much of one span input or output a trace keeps: at most `MAX_VALUE_CHARS` of it.

A request may be 16 MiB (a photo as a data URL, a long document); its trace would copy all of
it into the spool line, the export process and the store, and serialising it held the event
loop for 40-130 ms. No one reads 15 MB in MLflow's UI (MLflow's own previews stop at 1,000
characters, 10,000 on Databricks), so a value past the budget is kept as its structure with
its strings cut, each cut ending in a marker that says how much is missing:

    "The quick brown fox… [15,710,208 more characters not recorded]"

and, past the budget, a list's remaining items and an object's remaining fields replaced by
one marker each. Checking a value and cutting it both cost at most a walk of the budget
(every value counts at least `_NODE_CHARS` characters), never a walk of the whole value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

# Characters of one span input or output a trace keeps: a long conversation (2,048 messages
# of a few hundred characters) fits whole; a 15 MB image or document does not.
MAX_VALUE_CHARS = 250_000
# Values looked at before deciding (about 0.3 µs each, ten times what orjson takes to encode
# one): a value with more is encoded to learn its size, and the encoding is reused.
MAX_NODES = 2_048
# What one value costs the budget besides its text.
_NODE_CHARS = 16
# Nesting kept (a request nests at most 64 levels).
_MAX_DEPTH = 64

_FITS, _TOO_LONG, _UNKNOWN = "fits", "too long", "unknown"


def bounded(value: Any, encode: Callable[[Any], bytes], *, fragment: bool = False) -> Any:
    """`value` itself when it fits in MAX_VALUE_CHARS; else a copy cut to fit, with markers.
    A value with too many parts to look at is encoded (with `encode`) to learn its size;
    with `fragment`, one that fits comes back as that encoding (an `orjson.Fragment`, for a
    line being encoded: no second encoding)."""
    verdict = _scan(value)
    if verdict == _FITS:
        return value
    if verdict == _TOO_LONG:
        return _Cutter().cut(value, _MAX_DEPTH)
    text = encode(value)
    if len(text) <= MAX_VALUE_CHARS:
        return orjson.Fragment(text) if fragment else value
    missing = len(text) - MAX_VALUE_CHARS
    head = text[:MAX_VALUE_CHARS].decode(errors="ignore")
    return f"{head}… [{missing:,} more bytes of JSON not recorded]"


def _scan(value: Any) -> str:
    """Whether `value` fits, is too long, or has more values than are looked at."""
    budget = MAX_VALUE_CHARS
    nodes = MAX_NODES
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        nodes -= 1
        budget -= _NODE_CHARS + len(item) if isinstance(item, str) else _NODE_CHARS
        if budget < 0 or depth > _MAX_DEPTH:
            return _TOO_LONG
        if nodes < 0:
            return _UNKNOWN
        if isinstance(item, dict | list | tuple):
            if len(item) > nodes:
                return _UNKNOWN  # (without first stacking 100,000 children)
            if isinstance(item, dict):
                for key, child in item.items():
                    budget -= len(key) if isinstance(key, str) else _NODE_CHARS
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return _FITS


class _Cutter:
    """A copy that stops at MAX_VALUE_CHARS or MAX_NODES, whichever comes first."""

    def __init__(self) -> None:
        self.left = MAX_VALUE_CHARS
        self.nodes = MAX_NODES

    def cut(self, value: Any, depth: int) -> Any:
        self.left -= _NODE_CHARS
        self.nodes -= 1
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict | list | tuple) and depth <= 0:
            return "… [nested too deep, not recorded]"
        if isinstance(value, dict):
            return self._object(value, depth - 1)
        if isinstance(value, list | tuple):
            return self._array(value, depth - 1)
        return value

    @property
    def _spent(self) -> bool:
        return self.left <= 0 or self.nodes <= 0

    def _text(self, text: str) -> str:
        keep = max(self.left, 0)
        if len(text) <= keep:
            self.left -= len(text)
            return text
        self.left = 0
        return f"{text[:keep]}… [{len(text) - keep:,} more characters not recorded]"

    def _object(self, value: dict[Any, Any], depth: int) -> dict[Any, Any]:
        kept: dict[Any, Any] = {}
        for index, (key, child) in enumerate(value.items()):
            if self._spent:
                kept["…"] = f"{len(value) - index:,} more fields not recorded"
                break
            self.left -= len(key) if isinstance(key, str) else _NODE_CHARS
            kept[key] = self.cut(child, depth)
        return kept

    def _array(self, value: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        kept: list[Any] = []
        for index, child in enumerate(value):
            if self._spent:
                kept.append(f"… [{len(value) - index:,} more items not recorded]")
                break
            kept.append(self.cut(child, depth))
        return kept
