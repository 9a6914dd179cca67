"""The per-worker agent: what it serves, its model backend and tracer, built at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_service.agents.base import Agent
from agent_service.errors import Overloaded
from agent_service.observability.tracing import Tracer, TracingStatus


def _not_started() -> Tracer:
    return Tracer(TracingStatus(enabled=False, available=False, destination="", reason="starting"))


@dataclass(slots=True)
class AgentRuntime:
    """Filled by the app's cleanup contexts once the agent and tracing are ready."""

    version: str
    mlflow_version: str
    agent: Agent | None = None
    # The chat model the agent was given ("" when it asked for none).
    backend_kind: str = ""
    backend_endpoint: str = ""
    tracer: Tracer = field(default_factory=_not_started)

    def require_agent(self) -> Agent:
        if self.agent is None:
            raise Overloaded(
                "The agent is still starting; retry shortly.", headers={"Retry-After": "1"}
            )
        return self.agent
