"""Which protocol and which stream framing each agent route serves, from the registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_service.http.sse import DATA_ONLY, NAMED_EVENTS, Framing
from agent_service.protocols.base import Task
from agent_service.protocols.registry import PROTOCOLS, ProtocolSpec, TaskName, load_task

INVOCATIONS = "/invocations"


@dataclass(frozen=True, slots=True)
class Endpoint:
    spec: ProtocolSpec
    task: Task
    framing: Framing


def agent_endpoints(configured_task: TaskName) -> dict[str, Endpoint]:
    """POST path → endpoint. `/invocations` follows the configured task with data-only frames
    ending in [DONE] (the Databricks convention, whatever the task); the OpenAI-compatible
    paths always speak their own protocol with that protocol's OpenAI framing."""
    tasks = {name: load_task(name) for name in PROTOCOLS}
    endpoints = {
        INVOCATIONS: Endpoint(PROTOCOLS[configured_task], tasks[configured_task], DATA_ONLY)
    }
    for name, spec in PROTOCOLS.items():
        framing = NAMED_EVENTS if spec.named_events else DATA_ONLY
        for path in spec.openai_paths:
            endpoints[path] = Endpoint(spec, tasks[name], framing)
    return endpoints


def wrong_protocol_message(path: str, spec: ProtocolSpec, body: Mapping[str, Any]) -> str | None:
    """For a body of another protocol than the one `path` speaks (it lacks the route's
    protocol's field and has another protocol's), a message saying what the route speaks and
    where the body's protocol is served; None for a body that is merely invalid."""
    if spec.input_field in body:
        return None
    others = [
        other
        for other in PROTOCOLS.values()
        if other.input_field != spec.input_field and other.input_field in body
    ]
    if not others:
        return None
    speaks = f"{path} speaks {spec.title}"
    if path == INVOCATIONS:
        speaks += f" (AGENT_TASK={spec.task})"
    looks_like = " or ".join(other.title for other in others)
    message = (
        f"{speaks}, whose requests carry `{spec.input_field}`; this body has "
        f"`{others[0].input_field}`, like {looks_like} requests."
    )
    routes = [
        f"{other.title} requests to {other.openai_paths[0]}"
        for other in others
        if other.openai_paths
    ]
    advice = [f"send {' and '.join(routes)}"] if routes else []
    if path == INVOCATIONS:
        tasks = ", ".join(other.task for other in others)
        advice.append(f"choose what {INVOCATIONS} speaks with AGENT_TASK ({tasks})")
    if advice:
        sentence = ", or ".join(advice)
        message += f" {sentence[0].upper()}{sentence[1:]}."
    return message
