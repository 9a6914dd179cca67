"""The per-worker agent: the compiled graph and what describes it, built at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from .agent import AgentGraph
from .errors import Overloaded


@dataclass(slots=True)
class AgentRuntime:
    """Filled by the app's cleanup context once the model and the graph are built."""

    version: str
    mlflow_version: str
    graph: AgentGraph | None = None
    backend_kind: str = ""
    backend_endpoint: str = ""

    def require_graph(self) -> AgentGraph:
        if self.graph is None:
            raise Overloaded(
                "The agent is still starting; retry shortly.", headers={"Retry-After": "1"}
            )
        return self.graph
