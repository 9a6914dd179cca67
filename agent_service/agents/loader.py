"""Which agent a worker serves: `AGENT=package.module:attribute` (or a `.py` file), turned into
an `Agent`.

What the name may point at, tried in the order of `KINDS`:
- an `Agent` already (anything with `kind`, `invoke` and `stream`);
- a compiled LangGraph graph (`graph_contract.py` says what it needs);
- an object that knows its agent: `agent_server.AgentServer` and its `app`;
- an instance of MLflow's `ResponsesAgent`, `ChatAgent` or `ChatModel`;
- a module: its `AgentServer` app, else the model it handed `mlflow.models.set_model`
  (models from code), else the @invoke/@stream functions it registered;
- else a factory: a callable (sync or async) returning one of the above, called once per
  worker with the arguments it names among `model` (the configured chat model), `tools`
  (the configured tools) and `settings`; an async generator factory opens per-worker
  resources before its `yield` and closes them after it, when the worker stops.
Start-up hooks registered with `@agent_server.startup()` run once the agent is built.
Nothing here runs at import.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from langgraph.pregel import Pregel

from agent_service.agents.base import Agent, AgentLoadError
from agent_service.agents.functions import REGISTERED, STARTUP_HOOKS, FunctionAgent
from agent_service.agents.graph_runner import GraphAgent
from agent_service.agents.mlflow_models import mlflow_agent, mlflow_task, set_model_target
from agent_service.agents.tools import select_tools
from agent_service.models.backends import ChatModelBackend, build_chat_model
from agent_service.protocols.registry import TASK_NAMES, TaskName
from agent_service.settings import Settings

# An object that knows which agent it stands for (agent_server.AgentServer, its app), and
# the protocol that agent is written in.
SERVED_HOOK = "__agent_service_agent__"
TASK_HOOK = "__agent_service_task__"


@dataclass(frozen=True, slots=True)
class LoadContext:
    settings: Settings


Kind = Callable[[object, LoadContext], Agent | None]


def _agent(target: object, context: LoadContext) -> Agent | None:
    if all(hasattr(target, name) for name in ("kind", "invoke", "stream")):
        agent: Agent = target  # type: ignore[assignment]
        return agent
    return None


def _graph(target: object, context: LoadContext) -> Agent | None:
    if not isinstance(target, Pregel):
        return None
    return GraphAgent(target, max_steps=context.settings.max_agent_steps)


def _served(target: object, context: LoadContext) -> Agent | None:
    hook = getattr(target, SERVED_HOOK, None)
    if hook is None or isinstance(target, type):
        return None
    agent: Agent = hook(context.settings)
    return agent


def _mlflow(target: object, context: LoadContext) -> Agent | None:
    return mlflow_agent(target)


def _module(target: object, context: LoadContext) -> Agent | None:
    if not isinstance(target, ModuleType):
        return None
    for value in vars(target).values():
        if (agent := _served(value, context)) is not None:
            return agent
    if (model := set_model_target()) is not None:
        return _as_agent(model, context)
    if REGISTERED:
        return FunctionAgent(context.settings.task, REGISTERED)
    return None


KINDS: list[Kind] = [_agent, _graph, _served, _mlflow, _module]


def native_task(target: object) -> TaskName | None:
    """The protocol `target` is written in, when it is written in one (@invoke/@stream
    functions of a typed AgentServer, MLflow's classes); None for graphs and factories."""
    if isinstance(target, ModuleType):
        for value in vars(target).values():
            if isinstance(value, ModuleType):
                continue  # what the module imported is not what it serves
            if (found := native_task(value)) is not None:
                return found
        model = set_model_target()
        return native_task(model) if model is not None and model is not target else None
    hook = getattr(target, TASK_HOOK, None)
    named: object = (
        hook() if callable(hook) and not isinstance(target, type) else mlflow_task(target)
    )
    return next((name for name in TASK_NAMES if name == named), None)


@dataclass(slots=True)
class LoadedAgent:
    agent: Agent
    # The chat model built for a factory that asked for one; None when nobody did.
    backend: ChatModelBackend | None


def import_target(spec: str) -> object:
    """`package.module:attribute`, `package.module` or `path/to/file.py[:attribute]` → the
    object it names."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = _import_file(module_name) if module_name.endswith(".py") else None
        module = module or importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentLoadError(f"AGENT={spec!r}: cannot import {module_name!r}: {exc}") from exc
    if not attribute:
        return module
    target: object = module
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise AgentLoadError(f"AGENT={spec!r}: {module_name} has no {attribute!r}") from None
    return target


def _import_file(path: str) -> ModuleType:
    """A models-from-code file, imported as a module named after it."""
    file = Path(path).resolve()
    if not file.is_file():
        raise ImportError(f"no file {path}")
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


async def load_agent(target: object, settings: Settings, resources: AsyncExitStack) -> LoadedAgent:
    """The agent `target` stands for; resources it opens are closed with `resources`."""
    context = LoadContext(settings)
    factory_arguments = _FactoryArguments(settings, resources)
    agent = _as_agent(target, context)
    if agent is None and callable(target) and not isinstance(target, ModuleType):
        made = await _call_factory(target, factory_arguments, resources)
        agent = _as_agent(made, context)
        target = made
    if agent is None:
        raise AgentLoadError(
            f"{_describe(target)} is not something the server can serve: expected a compiled "
            "LangGraph graph, @invoke/@stream functions, an MLflow ResponsesAgent, ChatAgent "
            "or ChatModel, or a factory returning one of them"
        )
    for hook in STARTUP_HOOKS:
        await _start(hook, resources)
    return LoadedAgent(agent, factory_arguments.backend)


def _as_agent(target: object, context: LoadContext) -> Agent | None:
    for kind in KINDS:
        if (agent := kind(target, context)) is not None:
            return agent
    return None


async def _start(hook: Callable[[], Any], resources: AsyncExitStack) -> None:
    if inspect.isasyncgenfunction(hook):
        await resources.enter_async_context(asynccontextmanager(hook)())
        return
    started = hook()
    if inspect.isawaitable(started):
        await started


class _FactoryArguments:
    """What a factory may ask for by parameter name; the model is built only when asked."""

    names = ("model", "tools", "settings")

    def __init__(self, settings: Settings, resources: AsyncExitStack) -> None:
        self.settings = settings
        self.backend: ChatModelBackend | None = None
        self._resources = resources

    async def get(self, name: str) -> object:
        if name == "settings":
            return self.settings
        if name == "tools":
            return select_tools(self.settings.agent_tools)
        if self.backend is None:
            self.backend = await build_chat_model(self.settings)
            # Its connections close when the worker stops, after what the factory opened.
            self._resources.push_async_callback(self.backend.aclose)
        return self.backend.model


async def _call_factory(
    factory: Callable[..., Any], arguments: _FactoryArguments, resources: AsyncExitStack
) -> object:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = inspect.Signature()
    kwargs: dict[str, object] = {}
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            for name in arguments.names:
                kwargs.setdefault(name, await arguments.get(name))
        elif parameter.name in arguments.names and parameter.kind is not parameter.POSITIONAL_ONLY:
            kwargs[parameter.name] = await arguments.get(parameter.name)
        elif parameter.default is parameter.empty and parameter.kind in (
            parameter.POSITIONAL_ONLY,
            parameter.POSITIONAL_OR_KEYWORD,
            parameter.KEYWORD_ONLY,
        ):
            raise AgentLoadError(
                f"{_describe(factory)}: the factory's parameter {parameter.name!r} is not one "
                f"the server can give; it passes {', '.join(arguments.names)} by name"
            )
    if inspect.isasyncgenfunction(factory):
        opened = asynccontextmanager(factory)
        return await resources.enter_async_context(opened(**kwargs))
    made = factory(**kwargs)
    if inspect.isawaitable(made):
        made = await made
    return made


def _describe(target: object) -> str:
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{name}" if module else str(name)
