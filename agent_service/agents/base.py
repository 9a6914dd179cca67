"""The one interface the server runs an agent through, whatever the agent is written with.

    Agent                 invoke(run) -> [events]      stream(run) -> async iterator of events
    ├── GraphAgent        a compiled LangGraph graph (agents/graph_runner.py)
    ├── FunctionAgent     @invoke / @stream functions (agents/functions.py)
    └── (MLflow classes)  ResponsesAgent, ChatAgent, ChatModel, served through FunctionAgent

An agent turns an `AgentRun` (the conversation, the run options, the request as sent) into
the internal events of `agent_service.events`, ending with exactly one `RunEnded`; a failure
is raised, already translated into our error hierarchy, and the answer path decides what
the client sees. `invoke` and `stream` of one agent give the same events for the same
answer, so a JSON body and a stream can never disagree. Which kind of object becomes which
agent is decided in one place: `agents/loader.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from agent_service.events import Event
from agent_service.run import AgentRun


class AgentLoadError(RuntimeError):
    """The configured agent cannot be served; raised at start-up, the message says why."""


class Agent(Protocol):
    @property
    def kind(self) -> str:
        """What the agent is, for /agent/info and logs: `graph`, `functions`, `mlflow:...`."""

    async def invoke(self, run: AgentRun) -> list[Event]:
        """Run to completion; every event of the answer."""

    def stream(self, run: AgentRun) -> AsyncIterator[Event]:
        """Run, yielding events as they are produced. Closing the iterator stops the run."""
