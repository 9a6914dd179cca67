"""The gunicorn options the service runs with, derived from settings and the CLI flags."""

from __future__ import annotations

from typing import Any

from .logs import ACCESS_LOG_FORMAT, logging_config
from .settings import Settings

WORKER_CLASS = "aiohttp.GunicornWebWorker"
# How long a worker may take to shut down after SIGTERM before gunicorn kills it.
GRACEFUL_TIMEOUT_S = 30
# gunicorn's worker heartbeat timeout; the aiohttp worker notifies every second, so this only
# catches a worker whose event loop is stuck.
WORKER_TIMEOUT_S = 60


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
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "timeout": WORKER_TIMEOUT_S,
        "keepalive": 75,
        "reload": reload,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logconfig_dict": logging_config(settings.log_level),
        "proc_name": settings.agent_name,
        # gunicorn's control socket lives at one path per user ($HOME/.gunicorn): several
        # servers on one machine would take it from each other, and we do not use it.
        "control_socket_disable": True,
    }
