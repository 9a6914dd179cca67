"""The per-worker agent: the compiled graph, its tracer and what describes them, built at
start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_service.agents.default_graph import AgentGraph
from agent_service.errors import Overloaded
from agent_service.observability.tracing import Tracer, TracingStatus


def _not_started() -> Tracer:
    return Tracer(TracingStatus(enabled=False, available=False, destination="", reason="starting"))


@dataclass(slots=True)
class AgentRuntime:
    """Filled by the app's cleanup context once the model, the graph and tracing are ready."""

    version: str
    mlflow_version: str
    graph: AgentGraph | None = None
    backend_kind: str = ""
    backend_endpoint: str = ""
    tracer: Tracer = field(default_factory=_not_started)

    def require_graph(self) -> AgentGraph:
        if self.graph is None:
            raise Overloaded(
                "The agent is still starting; retry shortly.", headers={"Retry-After": "1"}
            )
        return self.graph
