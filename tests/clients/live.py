"""A live service for client tests: the real app factory on a real port of 127.0.0.1, with the
offline model (scripted when a case needs tool calls) or a fake OpenAI-compatible upstream,
and traces read back from a local MLflow store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from mlflow.entities import Trace
from mlflow.tracking import MlflowClient
from pytest_aiohttp import AiohttpServer

from agent_service.agents.default_graph import build_graph
from agent_service.agents.tools import select_tools
from agent_service.app import create_app
from agent_service.keys import AGENT
from agent_service.models.offline import OfflineChatModel, ScriptedToolCall, ScriptedTurn
from tests.conftest import settings_for

# The model asks for the client's tool, then answers with what the tool said.
CLIENT_TOOL_SCRIPT = (
    ScriptedTurn(tool_calls=(ScriptedToolCall("get_weather", {"city": "Paris"}),)),
    ScriptedTurn(text="Sunny in Paris."),
)
# The model calls the agent's own calculator, then answers.
AGENT_TOOL_SCRIPT = (
    ScriptedTurn(
        text="Let me compute. ",
        tool_calls=(ScriptedToolCall("calculator", {"expression": "2**10"}),),
    ),
    ScriptedTurn(text="It is 1024."),
)


@dataclass(frozen=True)
class Live:
    root: str
    app: web.Application

    async def trace(self, trace_id: str) -> Trace:
        """The stored trace `trace_id`, once the worker's exporter has written it. (The
        server runs on this event loop: the store is read in a thread.)"""
        tracer = self.app[AGENT].tracer
        assert await tracer.flush(), "the export process stored every finished trace"
        store = MlflowClient(tracer.status.destination)
        trace: Trace = await asyncio.to_thread(store.get_trace, trace_id)
        return trace


async def start_service(
    aiohttp_server: AiohttpServer,
    env: Mapping[str, str],
    *,
    script: tuple[ScriptedTurn, ...] | None = None,
) -> Live:
    """The service with settings from `env`; with `script`, the offline model follows it and
    the agent has its calculator."""
    graph = None
    if script is not None:
        graph = build_graph(OfflineChatModel(script=script), select_tools(("calculator",)))
    app = await create_app(settings_for(env), agent=graph)
    server = await aiohttp_server(app)
    return Live(str(server.make_url("")).rstrip("/"), app)
