"""One module per wire protocol; `TASKS` maps each task name to its adapter."""

from __future__ import annotations

from agent_service.protocols.base import Task
from agent_service.protocols.chat_agent import ChatAgentTask
from agent_service.protocols.chat_completions import ChatCompletionsTask
from agent_service.protocols.responses import ResponsesTask
from agent_service.settings import TaskName

TASKS: dict[TaskName, Task] = {
    "agent/v1/chat": ChatCompletionsTask(),
    "agent/v2/chat": ChatAgentTask(),
    "agent/v1/responses": ResponsesTask(),
}
