"""Shaped like the Databricks `agent-langgraph` template's `agent_server/start_server.py`, with
one import changed: `mlflow.genai.agent_server` → `agent_service.agent_server`.

    uv run python -m examples.template_agent.start_server
    uv run agent-server --agent examples.template_agent.start_server:app
"""

# Need to import the agent to register the functions with the server
import examples.template_agent.agent  # noqa: F401

# (was: from mlflow.genai.agent_server import ...)
from agent_service.agent_server import AgentServer, setup_mlflow_git_based_version_tracking

agent_server = AgentServer("ResponsesAgent", enable_chat_proxy=True)

# Define the app as a module level variable to enable multiple workers
app = agent_server.app
setup_mlflow_git_based_version_tracking()


def main() -> None:
    agent_server.run(app_import_string="examples.template_agent.start_server:app")


if __name__ == "__main__":
    main()
