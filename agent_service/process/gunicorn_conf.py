"""gunicorn configuration for the aiohttp worker. The `agent-server` CLI applies the same options:

    gunicorn -c python:agent_service.process.gunicorn_conf agent_service.app:create_app

No `preload_app`: the app (graph, HTTP clients, tracing threads) is built in each worker after
the fork, never in the master.
"""

from __future__ import annotations

from agent_service.process.server_options import gunicorn_options
from agent_service.settings import Settings

globals().update(gunicorn_options(Settings.from_env()))
