"""What the readers of agents' own outputs share: their error, text and argument helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from agent_service.errors import ServiceError


class AgentOutputError(ServiceError):
    """The agent produced something its protocol does not allow; a generic 500 for the
    client, the detail in the log."""

    default_code = "agent_output_invalid"


def as_plain(value: Any, what: str) -> Mapping[str, Any]:
    """A handler's result or stream item as a dict: pydantic models (MLflow's Responses
    types), dataclasses (MLflow's ChatAgent / ChatModel types) and dicts are accepted, as
    MLflow's own server accepts them."""
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump(exclude_none=True)
        if isinstance(dumped, Mapping):
            return dumped
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain: Mapping[str, Any] = _without_nulls(dataclasses.asdict(value))
        return plain
    raise AgentOutputError(
        f"the agent's {what} is a {type(value).__name__}; expected a dict, a pydantic model "
        "or a dataclass"
    )


def text_of(content: Any) -> str:
    """Text from a string, a list of text parts, or anything JSON can say."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, Mapping) for part in content):
        return "".join(str(part.get("text") or "") for part in content)
    return orjson.dumps(content, default=str).decode()


def tool_arguments(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
