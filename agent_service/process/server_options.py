"""The gunicorn options the service runs with, derived from settings and the CLI flags.

This module is imported by gunicorn's master process: it must not import the app.
"""

from __future__ import annotations

import gc
import importlib
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Any

from agent_service.observability.logs import ACCESS_LOG_FORMAT, logging_config
from agent_service.settings import Settings

WORKER_CLASS = "agent_service.process.worker.AgentWorker"
# After the drain period, time for terminal stream events, trace export and exit; gunicorn
# kills workers that take longer than drain + this (or, where the platform kills the whole
# app at a set time after SIGTERM, a second before the master must be gone).
SHUTDOWN_MARGIN_S = 15
# The master's own time to reap its workers and exit, inside a platform's stop budget.
MASTER_EXIT_S = 1
# gunicorn's worker heartbeat timeout; the aiohttp worker notifies every second, so this only
# catches a worker whose event loop is stuck.
WORKER_TIMEOUT_S = 60
# prometheus_client's multi-process mode reads this variable when it is imported.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Libraries the master imports once so that every worker forks with them loaded: a worker
# then starts in a fraction of a second instead of seconds, and their code pages are shared
# between workers. Libraries only, never the app (a reload re-imports the app in fresh
# workers), and none of them starts a thread on import (checked by a test).
PRELOADED_LIBRARIES = (
    "aiohttp.web",
    "jsonschema",
    "langchain_core.language_models",
    "langchain_core.messages",
    "langchain_core.tools",
    "langchain_openai.chat_models.base",
    "langgraph.graph",
    "langgraph.prebuilt",
    "mlflow",
    "mlflow.entities",
    "mlflow.tracking",
    "openai",
    "orjson",
    "prometheus_client",
)
# The SQLite trace store's code (SQLAlchemy, alembic): over a second to import, so only when
# traces go to SQLite.
SQLITE_STORE = "mlflow.store.tracking.sqlalchemy_store"

log = logging.getLogger(__name__)


def gunicorn_options(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    reload: bool = False,
) -> dict[str, Any]:
    return {
        "bind": [f"{host or settings.host}:{settings.port if port is None else port}"],
        "workers": workers or settings.workers,
        "worker_class": WORKER_CLASS,
        "graceful_timeout": graceful_timeout(settings),
        "timeout": WORKER_TIMEOUT_S,
        # gunicorn takes whole seconds; the app's handler_args set the exact timeout.
        "keepalive": math.ceil(settings.idle_timeout_s),
        "reload": reload,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logconfig_dict": logging_config(settings.log_level),
        "proc_name": settings.agent_name,
        # gunicorn's control socket lives at one path per user ($HOME/.gunicorn): several
        # servers on one machine would take it from each other, and we do not use it.
        "control_socket_disable": True,
        **_master_hooks(settings),
    }


def graceful_timeout(settings: Settings) -> int:
    """How long gunicorn lets a worker stop after SIGTERM before it kills it."""
    timeout = math.ceil(settings.drain_s) + SHUTDOWN_MARGIN_S
    if (budget := settings.stop_budget_s) is not None:
        timeout = min(timeout, math.floor(budget) - MASTER_EXIT_S)
    return timeout


def _master_hooks(settings: Settings) -> dict[str, Any]:
    """The master's part of multi-process metrics (a folder for the workers' metric files,
    made before any worker exists and removed at exit) and of fast worker start-up."""
    given_dir = settings.metrics_dir
    created: list[str] = []
    sqlite_traces = settings.tracing and settings.tracking_uri.startswith("sqlite:")

    def on_starting(server: Any) -> None:
        if (budget := settings.stop_budget_s) is not None:
            log.info(
                "On Databricks Apps, which kills an app %gs after SIGTERM: drain %gs, "
                "graceful timeout %ss",
                budget,
                settings.drain_s,
                server.cfg.graceful_timeout,
            )
        if given_dir:
            # Stale files of a previous run would be counted: start empty.
            shutil.rmtree(given_dir, ignore_errors=True)
            os.makedirs(given_dir, exist_ok=True)
        else:
            folder = tempfile.mkdtemp(prefix="agent-service-metrics-")
            created.append(folder)
            # Workers inherit it; prometheus_client reads it when it is imported.
            os.environ[METRICS_DIR_VARIABLE] = folder
        # After the variable: prometheus_client is among the libraries.
        preload_libraries((SQLITE_STORE,) if sqlite_traces else ())

    def on_exit(server: Any) -> None:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)

    return {"on_starting": on_starting, "child_exit": _forget_worker_metrics, "on_exit": on_exit}


def preload_libraries(extra: tuple[str, ...] = ()) -> None:
    started = time.monotonic()
    for name in (*PRELOADED_LIBRARIES, *extra):
        importlib.import_module(name)
    # What the master loaded is shared with the workers page by page until something writes
    # to it; the garbage collector writes to every object it scans. Frozen, they stay shared.
    gc.collect()
    gc.freeze()
    log.info("Preloaded libraries in %.1fs", time.monotonic() - started)


def _forget_worker_metrics(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges (requests in flight) must stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
