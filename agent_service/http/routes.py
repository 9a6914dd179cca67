"""Which task and which stream framing each agent route serves."""

from __future__ import annotations

from dataclasses import dataclass

from agent_service.http.sse import DATA_ONLY, NAMED_EVENTS, Framing
from agent_service.protocols import TASKS
from agent_service.protocols.base import Task
from agent_service.settings import TaskName


@dataclass(frozen=True, slots=True)
class Endpoint:
    task: Task
    framing: Framing


def agent_endpoints(configured_task: TaskName) -> dict[str, Endpoint]:
    """POST path → endpoint. `/invocations` follows the configured task with data-only frames
    ending in [DONE] (the Databricks convention, whatever the task); the OpenAI-compatible
    paths always speak their own protocol with OpenAI's framing."""
    responses = Endpoint(TASKS["agent/v1/responses"], NAMED_EVENTS)
    return {
        "/invocations": Endpoint(TASKS[configured_task], DATA_ONLY),
        "/v1/chat/completions": Endpoint(TASKS["agent/v1/chat"], DATA_ONLY),
        "/v1/responses": responses,
        "/responses": responses,
    }
