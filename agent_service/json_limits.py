"""How much JSON structure a request body may hold, checked around parsing.

A body's cost grows with its structure, not its size: orjson builds one Python object per
value (a megabyte of `{},{},...` costs a hundred times a megabyte of text), and everything
after the parser — schema validation, the trace, the agent's message conversion — walks
those objects again. Nesting breaks recursive consumers (the standard JSON encoder, error
messages that quote a value) long before it troubles the parser. So:

- while the body arrives, `StructureCount` counts the bytes that open a container (`{`,
  `[`) and separate values (`,`) — inside strings too, so the count is an upper bound, taken
  piece by piece at memory speed — and refuses a body with more than a conversation needs;
- after parsing, `DepthCheck` finds the first container nested deeper than `max_depth`
  levels (the body itself is level 1), with jsonschema-rs doing the walking.

Why these numbers: schemas/README.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from agent_service.schemas import JsonPath


@dataclass(frozen=True, slots=True)
class JsonLimits:
    # Objects and arrays (`{` and `[` bytes): a 2,048-message conversation with content
    # parts and tool calls has a few tens of thousands.
    max_containers: int = 100_000
    # Values after the first in a container (`,` bytes): prose has one comma per 60-80
    # characters, so this is about 16 MiB of text; a dense array of numbers is refused here.
    max_separators: int = 250_000
    # Nesting levels: a tool's JSON Schema 10 objects deep (the most OpenAI's structured
    # outputs accept) sits about 25 levels down in a request.
    max_depth: int = 64


LIMITS = JsonLimits()


# The bytes counted, and a table that deletes every other byte: one pass over the body.
_STRUCTURE = b"{[,"
_NOT_STRUCTURE = bytes(range(256)).translate(None, _STRUCTURE)


class StructureCount:
    """Counts a body's structure piece by piece, as it arrives."""

    def __init__(self, limits: JsonLimits) -> None:
        self._limits = limits
        self.containers = 0
        self.separators = 0

    def add(self, piece: bytes) -> str | None:
        """Count `piece`; why the body so far holds more structure than a request may, or
        None."""
        structure = piece.translate(None, _NOT_STRUCTURE)
        self.containers += structure.count(b"{") + structure.count(b"[")
        self.separators += structure.count(b",")
        limits = self._limits
        if self.containers > limits.max_containers:
            return (
                f"The request body has more than {limits.max_containers} JSON objects and "
                "arrays (brackets inside strings count too)."
            )
        if self.separators > limits.max_separators:
            return (
                f"The request body has more than {limits.max_separators} JSON values (commas "
                "inside strings count too)."
            )
        return None


_SCALAR = {"type": ["string", "number", "boolean", "null"]}


class DepthCheck:
    """Finds the first container nested deeper than `max_depth` levels: one jsonschema-rs
    validator says whether a value nests too deep; to find where, each child of a failing
    container is checked at the depth it sits at in the body (wrapped in as many one-item
    lists as it has ancestors), so the walk follows the failure down without recursion."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        # level_k: a value at level k + 1 whose containers may nest max_depth - k - 1 more.
        definitions: dict[str, Any] = {}
        for level in range(max_depth):
            child = {"$ref": f"#/$defs/level_{level + 1}"} if level + 1 < max_depth else _SCALAR
            definitions[f"level_{level}"] = {"items": child, "additionalProperties": child}
        # Masked: an error never quotes the (possibly large) value that nests too deep.
        self._check = jsonschema_rs.validator_for(
            {"$ref": "#/$defs/level_0", "$defs": definitions}, mask="…"
        )

    def too_deep(self, value: object) -> JsonPath | None:
        """The path to the first container past the limit, or None."""
        if self._check.is_valid(value):
            return None
        try:
            self._check.validate(value)
        except jsonschema_rs.ValidationError as error:
            return list(error.instance_path)
        except ValueError:
            pass  # too deep for jsonschema-rs to describe (past ~250 levels): walk down
        path: JsonPath = []
        node: Any = value
        while len(path) < self.max_depth:
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in children:
                if isinstance(child, dict | list) and not self._check.is_valid(
                    _at_depth(child, len(path) + 1)
                ):
                    path.append(key)
                    node = child
                    break
            else:  # pragma: no cover - a container that nests too deep has such a child
                break
        return path


def _at_depth(value: object, ancestors: int) -> object:
    for _ in range(ancestors):
        value = [value]
    return value


@functools.cache
def depth_check(max_depth: int = LIMITS.max_depth) -> DepthCheck:
    """The depth check for `max_depth`, built once per process."""
    return DepthCheck(max_depth)
