"""The application factory: the only place that wires the service together.

gunicorn's aiohttp worker calls `create_app()` with no arguments in each worker process;
tests call it with their own settings and, where they need one, their own agent (anything
`AGENT` could name: a graph, a factory, @invoke/@stream functions, an MLflow agent).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from agent_service.agents.graph_runner import GraphAgent
from agent_service.agents.loader import import_target, load_agent, native_task
from agent_service.http import views
from agent_service.http.admission import RequestGate, admission_middleware
from agent_service.http.background import BackgroundRuns, watch_runs
from agent_service.http.client_log import server_logger
from agent_service.http.middlewares import (
    add_id_headers,
    error_middleware,
    metrics_middleware,
    note_started,
    request_id_middleware,
)
from agent_service.http.openapi import build_openapi
from agent_service.http.routes import agent_endpoints
from agent_service.http.security import add_cors_headers, auth_middleware, cors_middleware
from agent_service.http.state import setup_state
from agent_service.http.stored import setup_stored_routes
from agent_service.http.ui import setup_ui
from agent_service.http.validation import body_middleware
from agent_service.keys import (
    AGENT,
    ENDPOINTS,
    GATE,
    METRICS,
    OPENAPI,
    RUNS,
    SCHEMAS,
    SETTINGS,
    STATE,
)
from agent_service.observability.loop_lag import LoopLagMonitor
from agent_service.observability.metrics import Metrics
from agent_service.observability.tracing import start_tracer
from agent_service.observability.versioning import version_name
from agent_service.runtime import AgentRuntime
from agent_service.schemas import bundled
from agent_service.settings import Settings

log = logging.getLogger(__name__)


async def create_app(
    settings: Settings | None = None, *, agent: object | None = None
) -> web.Application:
    settings = settings or Settings.from_env()
    # Imported here, in the worker; built (model, resources) in the agent's cleanup context.
    target = agent if agent is not None else import_target(settings.agent)
    if not settings.task_explicit and (task := native_task(target)) is not None:
        settings = dataclasses.replace(settings, task=task)
    app = web.Application(
        middlewares=[
            metrics_middleware,
            error_middleware,
            request_id_middleware,
            cors_middleware,
            auth_middleware,
            # The body is read (within BODY_READ_TIMEOUT_SECONDS) and checked before the
            # request is admitted: a slow upload must not hold a run's place.
            body_middleware,
            admission_middleware,
        ],
        client_max_size=settings.max_body_bytes,
        handler_args={
            # Cancel the handler when its client disconnects, so an abandoned run stops at
            # once instead of finishing (and paying for) an answer nobody reads.
            "handler_cancellation": True,
            "max_line_size": settings.max_header_bytes,
            "max_field_size": settings.max_header_bytes,
            # Idle keep-alive connections, and connections slow to send a request head, are
            # closed after this (overrides gunicorn's `keepalive`, which says the same).
            "keepalive_timeout": settings.idle_timeout_s,
            # aiohttp's own errors (requests it cannot parse) on its logger, with the filter
            # that logs a client's malformed request as the client's fault. Under gunicorn
            # the worker would pass gunicorn's logger, which has no such filter.
            "logger": server_logger(),
            # Request bodies are taken as sent: inflating gzip on the event loop is unbounded
            # work (validation refuses a Content-Encoding with 415).
            "auto_decompress": False,
        },
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics(settings.metrics_dir)
    app[GATE] = RequestGate(settings.max_concurrent_requests, settings.request_deadline_s)
    # Checked here, at start-up: a broken schema file stops the worker, not a request.
    app[SCHEMAS] = bundled()
    app[AGENT] = AgentRuntime(version="", mlflow_version=_package_version("mlflow-skinny"))
    by_path = agent_endpoints(settings.task)
    app[ENDPOINTS] = {
        app.router.add_post(path, views.invoke_agent): endpoint
        for path, endpoint in by_path.items()
    }
    app[OPENAPI] = build_openapi(app[SCHEMAS], by_path, settings.agent_name)
    app.router.add_get("/health", views.health)
    app.router.add_get("/ready", views.ready)
    app.router.add_get("/agent/info", views.agent_info)
    app.router.add_get("/metrics", views.metrics)
    app.router.add_get("/openapi.json", views.openapi)
    setup_ui(app)
    app.on_response_prepare.append(add_id_headers)
    app.on_response_prepare.append(note_started)
    app.on_response_prepare.append(add_cors_headers)
    app.on_shutdown.append(_drain)
    app.cleanup_ctx.append(_loop_lag_context)
    app.cleanup_ctx.append(_tracing_context)
    setup_state(app)
    app[RUNS] = BackgroundRuns()
    app.cleanup_ctx.append(watch_runs)
    setup_stored_routes(app)
    app.cleanup_ctx.append(_agent_context(target))
    return app


async def _drain(app: web.Application) -> None:
    """On SIGTERM, after the listening sockets closed: finish what is running, then stop."""
    await app[GATE].drain(app[SETTINGS].drain_s)


async def _loop_lag_context(app: web.Application) -> AsyncIterator[None]:
    """Watch this worker's event loop for stalls while it serves (`/metrics`)."""
    metrics = app[METRICS]
    monitor = LoopLagMonitor(metrics.loop_lag, metrics.loop_lag_max)
    monitor.start()
    yield
    monitor.stop()


async def _tracing_context(app: web.Application) -> AsyncIterator[None]:
    """Name this version and connect to the tracking store, once per worker; flush at exit."""
    settings = app[SETTINGS]
    agent = app[AGENT]
    # `git` is a subprocess: off the event loop.
    agent.version = await asyncio.to_thread(
        version_name, settings.version_name, settings.agent_version
    )
    agent.tracer = await start_tracer(settings, agent.version)
    dropped = app[METRICS].traces_dropped
    agent.tracer.count_drops(lambda reason: dropped.labels(reason).inc())
    if (sink := agent.tracer.sink) is not None:
        app[METRICS].watch_trace_export(sink.exporter_status)
    yield
    # After the drain: every trace of this worker is stored before it exits.
    await agent.tracer.close(settings.drain_s)


def _agent_context(target: object) -> Callable[[web.Application], AsyncIterator[None]]:
    async def agent_context(app: web.Application) -> AsyncIterator[None]:
        """Build the agent once per worker; close what it opened when the worker stops."""
        settings = app[SETTINGS]
        runtime = app[AGENT]
        async with AsyncExitStack() as resources:
            loaded = await load_agent(target, settings, resources)
            runtime.agent = loaded.agent
            store = app[STATE].store
            if store is not None and isinstance(runtime.agent, GraphAgent):
                # Conversation memory: the graph joins threads of the store's checkpointer.
                runtime.agent = runtime.agent.with_memory(store.checkpointer)
            if loaded.backend is not None:
                runtime.backend_kind = loaded.backend.kind
                runtime.backend_endpoint = loaded.backend.endpoint
            else:
                runtime.backend_kind = AGENT_DEFINED_MODEL
            log.info(
                "Serving %s (%s) on the %s model backend: %s; the agent: %s",
                settings.agent_name,
                settings.task,
                runtime.backend_kind,
                runtime.backend_endpoint or "-",
                runtime.agent.kind,
            )
            yield

    return agent_context


# The backend reported when the agent chose its model itself (nothing configured was used).
AGENT_DEFINED_MODEL = "agent-defined"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
