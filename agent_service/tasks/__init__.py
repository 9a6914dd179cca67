"""One module per wire protocol; `TASKS` maps each task name to its adapter."""

from __future__ import annotations

from ..settings import TaskName
from .base import Task
from .chat_completions import ChatCompletionsTask

TASKS: dict[TaskName, Task] = {
    "agent/v1/chat": ChatCompletionsTask(),
}
