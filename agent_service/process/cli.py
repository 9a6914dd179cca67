"""`agent-server`: run the service under gunicorn with the aiohttp worker.

    uv run agent-server --port 8001 --workers 4 --reload
    uv run agent-server --agent my_agent.graph:graph     # serve your own agent (AGENT)

This module runs in gunicorn's master process, so it must not import the app: workers import
it after the fork (and again after a reload, which is how code changes are picked up).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gunicorn.app.base import BaseApplication

from agent_service.process.server_options import gunicorn_options
from agent_service.settings import Settings, SettingsError


class GunicornServer(BaseApplication):
    """gunicorn running the app factory in each worker."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        from agent_service.app import create_app

        return create_app


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agent-server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=settings.host, help=f"default {settings.host}")
    parser.add_argument(
        "--port",
        type=int,
        default=settings.port,
        help=f"default $DATABRICKS_APP_PORT, else 8000 (now {settings.port})",
    )
    parser.add_argument(
        "--workers", type=int, default=settings.workers, help="worker processes (default 1)"
    )
    parser.add_argument(
        "--reload", action="store_true", help="restart workers when the code changes"
    )
    parser.add_argument(
        "--agent",
        default=None,
        help="what to serve, package.module:attribute or path/to/agent.py (default $AGENT, "
        f"else {settings.agent})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = Settings.from_env()
        args = parse_args(argv, settings)
        if args.agent is not None:
            # Workers read their settings from the environment they inherit; checked here.
            os.environ["AGENT"] = args.agent
            settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"agent-server: {exc}")
    # The agent's modules are found from where the server was started, as uvicorn finds
    # them (a console script's own folder is first on sys.path, not this one).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    options = gunicorn_options(
        settings, host=args.host, port=args.port, workers=args.workers, reload=args.reload
    )
    GunicornServer(options).run()


if __name__ == "__main__":
    main()
