"""The authoring API of MLflow's agent server and of the Databricks agent templates, served by
agent-service: change the import, keep the code.

    from mlflow.genai.agent_server import AgentServer, invoke, stream       # before
    from agent_service.agent_server import AgentServer, invoke, stream      # after

Both APIs are here: MLflow's `mlflow.genai.agent_server` (`AgentServer("ResponsesAgent")`,
`invoke`, `stream`, `get_invoke_function`, `get_stream_function`, `get_request_headers`,
`set_request_headers`, `setup_mlflow_git_based_version_tracking`) and the prototype it grew
from (`create_server("agent/v1/chat" | "agent/v2/chat" | "agent/v1/responses")`,
`parse_server_args()`, `setup_mlflow(register_model_to_uc=...)`). What differs, on purpose:

- The functions are served in all three protocols (the OpenAI routes speak theirs; what the
  functions return is read into events and encoded in full), with everything the service
  does: heartbeats, cancellation, deadlines, tracing, metrics.
- Sync functions and generators run in a thread pool, never on the event loop.
- `agent_server.app` is what gunicorn's workers (and `AGENT=module:app`) load;
  `agent_server.run(...)` starts agent-server (gunicorn) on it.
- MLflow tracking and versions are configured by the server from the same environment
  variables (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID, DATABRICKS_APP_NAME), once per
  worker: `setup_mlflow()` and `setup_mlflow_git_based_version_tracking()` have nothing left
  to do at import time.

One addition: `@startup()` registers an async function (or async generator: its code after
`yield` runs when the worker stops) that opens per-worker resources, such as a connection
pool, once, before the first request.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from agent_service.agents.base import AgentLoadError
from agent_service.agents.functions import (
    REGISTERED,
    REQUEST_HEADERS,
    STARTUP_HOOKS,
    FunctionAgent,
    RequestType,
)
from agent_service.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

__all__ = [
    "AgentServer",
    "create_server",
    "get_invoke_function",
    "get_request_headers",
    "get_stream_function",
    "invoke",
    "parse_server_args",
    "set_request_headers",
    "setup_mlflow",
    "setup_mlflow_git_based_version_tracking",
    "startup",
    "stream",
]

AgentType = Literal["ResponsesAgent", "agent/v1/responses", "agent/v1/chat", "agent/v2/chat"]
# MLflow's name for its protocol; the prototype used the task names themselves.
_MLFLOW_TYPES = {"ResponsesAgent": "agent/v1/responses"}
_TASKS = ("agent/v1/responses", "agent/v1/chat", "agent/v2/chat")

_F = TypeVar("_F", bound=Callable[..., Any])


def invoke() -> Callable[[_F], _F]:
    """Register the function that answers non-streaming requests. Once only."""

    def decorator(function: _F) -> _F:
        REGISTERED.register("invoke", function)
        return function

    return decorator


def stream() -> Callable[[_F], _F]:
    """Register the function that answers streaming requests. Once only."""

    def decorator(function: _F) -> _F:
        REGISTERED.register("stream", function)
        return function

    return decorator


def startup() -> Callable[[_F], _F]:
    """Register a per-worker start-up hook (an async function or async generator)."""

    def decorator(function: _F) -> _F:
        STARTUP_HOOKS.append(function)
        return function

    return decorator


def get_invoke_function() -> Callable[..., Any] | None:
    return REGISTERED.invoke


def get_stream_function() -> Callable[..., Any] | None:
    return REGISTERED.stream


def get_request_headers() -> dict[str, str]:
    """The headers of the request being answered, names in lower case (as MLflow gives
    them): `x-forwarded-access-token` is the caller's own token on Databricks Apps."""
    return {name.lower(): value for name, value in REQUEST_HEADERS.get().items()}


def set_request_headers(headers: Mapping[str, str]) -> None:
    """The server sets them for each request; tests of an agent may set them by hand."""
    REQUEST_HEADERS.set(dict(headers))


class AgentServer:
    """What serves the registered functions. `agent_type`: "ResponsesAgent" (MLflow: the
    functions get a `ResponsesAgentRequest`), a task name (the prototype: they get a dict),
    or None (a dict in the protocol AGENT_TASK names)."""

    def __init__(self, agent_type: AgentType | None = None, enable_chat_proxy: bool = False):
        if agent_type is not None and agent_type not in (*_MLFLOW_TYPES, *_TASKS):
            raise ValueError(
                f"agent_type {agent_type!r}: expected ResponsesAgent, {', '.join(_TASKS)} or None"
            )
        self.agent_type = agent_type
        # The chat page is served by agent-service itself (/): there is nothing to proxy.
        self.enable_chat_proxy = enable_chat_proxy
        self.app = ServedApp(self)

    def __agent_service_task__(self) -> str | None:
        """The protocol the functions speak; None: whatever AGENT_TASK says."""
        return _MLFLOW_TYPES.get(self.agent_type or "", self.agent_type)

    def __agent_service_agent__(self, settings: Settings) -> FunctionAgent:
        typed = self.agent_type in _MLFLOW_TYPES
        task = _MLFLOW_TYPES.get(self.agent_type or "", self.agent_type) or settings.task
        return FunctionAgent(task, REGISTERED, request_type=_typed_request() if typed else None)

    def run(
        self,
        app_import_string: str,
        # As MLflow's: in a container (Databricks Apps) the server must listen on all.
        host: str = "0.0.0.0",
        port: int | None = None,
        workers: int | None = None,
        reload: bool | None = None,
    ) -> None:
        """Serve `app_import_string` (`package.module:app`) with agent-server. What is not
        given comes from the command line (`--port`, `--workers`, `--reload`), as MLflow's
        `run` reads it. This process becomes the server: the agent's modules are imported
        again in each worker, so `--reload` picks up changes."""
        if None in (port, workers, reload):
            args = parse_server_args()
            port = args.port if port is None else port
            workers = args.workers if workers is None else workers
            reload = args.reload if reload is None else reload
        argv = ["--agent", app_import_string, "--host", host, "--port", str(port)]
        argv += ["--workers", str(workers), *(["--reload"] if reload else [])]
        sys.stdout.flush()
        sys.stderr.flush()
        command = [sys.executable, "-m", "agent_service.process.cli", *argv]
        os.execv(sys.executable, command)  # noqa: S606 - our own interpreter, fixed arguments


class ServedApp:
    """`agent_server.app`: what gunicorn's aiohttp worker loads (`module:app`, an async
    factory of the aiohttp application) and what `AGENT=module:app` names."""

    def __init__(self, server: AgentServer) -> None:
        self._server = server

    def __agent_service_task__(self) -> str | None:
        return self._server.__agent_service_task__()

    def __agent_service_agent__(self, settings: Settings) -> FunctionAgent:
        return self._server.__agent_service_agent__(settings)

    async def __call__(self) -> web.Application:
        from agent_service.app import create_app

        return await create_app(agent=self._server)


def create_server(agent_type: AgentType | None = None) -> AgentServer:
    """The prototype's entry point: a server whose functions get dicts."""
    return AgentServer(agent_type)


def parse_server_args() -> argparse.Namespace:
    """`--port`, `--workers`, `--reload`, as the prototype and MLflow parse them (defaults
    from the environment: DATABRICKS_APP_PORT, WEB_CONCURRENCY)."""
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description="Start the agent server")
    parser.add_argument("--port", type=int, default=settings.port, help="default: 8000")
    parser.add_argument("--workers", type=int, default=settings.workers, help="default: 1")
    parser.add_argument("--reload", action="store_true", help="restart on code changes")
    return parser.parse_args()


def setup_mlflow(*, register_model_to_uc: bool = False) -> None:
    """The prototype's MLflow set-up. Tracking (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID) and
    this version's LoggedModel are set up by each worker; `register_model_to_uc=True`
    registers this version in Unity Catalog now (UC_MODEL_NAME), as `make register` does."""
    if register_model_to_uc:
        from agent_service.process.register import register

        log.info("Registered %s", register(Settings.from_env()))


def setup_mlflow_git_based_version_tracking() -> None:
    """MLflow's version tracking: each worker already links its traces to the LoggedModel
    `<DATABRICKS_APP_NAME>-git-<sha8>`, found or created at start-up, off the import path."""


def _typed_request() -> RequestType:
    """MLflow's `ResponsesAgentRequest`, which MLflow's AgentServer hands its functions.
    MLflow's types import numpy: say so plainly when it is missing."""
    try:
        from mlflow.types.responses import ResponsesAgentRequest
    except ImportError as exc:
        raise AgentLoadError(
            'AgentServer("ResponsesAgent") hands functions MLflow\'s ResponsesAgentRequest, '
            f"and MLflow's types need {exc.name}: add it to your project (uv add numpy), or "
            "use AgentServer() to get plain dicts"
        ) from exc

    def typed(body: dict[str, Any]) -> Any:
        return ResponsesAgentRequest(**body)

    return typed
