"""Which protocol and which stream framing each agent route serves, from the registry."""

from __future__ import annotations

from dataclasses import dataclass

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
