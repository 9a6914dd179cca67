"""One module per wire protocol; `TASKS` maps each task name to its adapter."""

from __future__ import annotations

from ..settings import TaskName
from .base import Task
from .chat_agent import ChatAgentTask
from .chat_completions import ChatCompletionsTask
from .responses import ResponsesTask

TASKS: dict[TaskName, Task] = {
    "agent/v1/chat": ChatCompletionsTask(),
    "agent/v2/chat": ChatAgentTask(),
    "agent/v1/responses": ResponsesTask(),
}
