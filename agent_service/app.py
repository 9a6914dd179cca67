"""The application factory: the only place that wires the service together.

gunicorn's aiohttp worker calls `create_app()` with no arguments in each worker process;
tests call it with their own settings and, where they need one, their own graph.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from . import views
from .agent import AgentGraph, build_graph
from .keys import AGENT, ENDPOINTS, SCHEMAS, SETTINGS
from .middlewares import (
    add_id_headers,
    body_middleware,
    error_middleware,
    request_id_middleware,
)
from .models import build_chat_model
from .routes import agent_endpoints
from .runtime import AgentRuntime
from .schemas import bundled
from .settings import Settings
from .tools import select_tools
from .tracing import start_tracer
from .versioning import version_name

log = logging.getLogger(__name__)


async def create_app(
    settings: Settings | None = None, *, graph: AgentGraph | None = None
) -> web.Application:
    settings = settings or Settings.from_env()
    app = web.Application(
        middlewares=[error_middleware, request_id_middleware, body_middleware],
        client_max_size=settings.max_body_bytes,
        # Cancel the handler when its client disconnects, so an abandoned run stops at once
        # instead of finishing (and paying for) an answer nobody reads.
        handler_args={"handler_cancellation": True},
    )
    app[SETTINGS] = settings
    # Checked here, at start-up: a broken schema file stops the worker, not a request.
    app[SCHEMAS] = bundled()
    app[AGENT] = AgentRuntime(
        version="",
        mlflow_version=_package_version("mlflow-skinny"),
        graph=graph,
        backend_kind="injected" if graph is not None else "",
    )
    endpoints = {}
    for path, endpoint in agent_endpoints(settings.task).items():
        endpoints[app.router.add_post(path, views.invoke_agent)] = endpoint
    app[ENDPOINTS] = endpoints
    app.router.add_get("/health", views.health)
    app.router.add_get("/agent/info", views.agent_info)
    app.on_response_prepare.append(add_id_headers)
    app.cleanup_ctx.append(_tracing_context)
    app.cleanup_ctx.append(_agent_context)
    return app


async def _tracing_context(app: web.Application) -> AsyncIterator[None]:
    """Name this version and connect to the tracking store, once per worker; flush at exit."""
    settings = app[SETTINGS]
    agent = app[AGENT]
    # `git` is a subprocess: off the event loop.
    agent.version = await asyncio.to_thread(
        version_name, settings.version_name, settings.agent_version
    )
    agent.tracer = await start_tracer(settings, agent.version)
    yield
    await agent.tracer.close()


async def _agent_context(app: web.Application) -> AsyncIterator[None]:
    """Build the chat model and compile the graph once per worker."""
    settings = app[SETTINGS]
    agent = app[AGENT]
    if agent.graph is None:
        backend = await build_chat_model(settings)
        agent.graph = build_graph(backend.model, select_tools(settings.agent_tools))
        agent.backend_kind = backend.kind
        agent.backend_endpoint = backend.endpoint
    log.info(
        "Serving %s (%s) on the %s model backend: %s",
        settings.agent_name,
        settings.task,
        agent.backend_kind,
        agent.backend_endpoint or "-",
    )
    yield


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
