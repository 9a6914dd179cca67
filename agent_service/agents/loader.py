"""Which agent a worker serves: `AGENT=package.module:attribute`, turned into an `Agent`.

The attribute may be any of the kinds in `KINDS`, tried in order, or a factory: a callable
(sync or async) that returns one of them. A factory is called once per worker with the
arguments it names among `model` (the configured chat model), `tools` (the configured
tools) and `settings`; an async generator factory opens per-worker resources before its
`yield` and closes them after it, when the worker stops. Nothing here runs at import.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from langgraph.pregel import Pregel

from agent_service.agents.base import Agent, AgentLoadError
from agent_service.agents.graph_runner import GraphAgent
from agent_service.agents.tools import select_tools
from agent_service.models.backends import ChatModelBackend, build_chat_model
from agent_service.settings import Settings


@dataclass(frozen=True, slots=True)
class AgentKind:
    """One kind of object the server can serve, and how to serve it."""

    name: str
    accepts: Callable[[object], bool]
    build: Callable[[Any], Agent]


def _is_agent(target: object) -> bool:
    return all(hasattr(target, name) for name in ("kind", "invoke", "stream"))


# Tried in order; the first that accepts the object serves it. The kinds for @invoke/@stream
# modules and MLflow's agent classes are added by their own modules (see `register_kind`).
KINDS: list[AgentKind] = [
    AgentKind("agent", _is_agent, lambda target: target),
    AgentKind("graph", lambda target: isinstance(target, Pregel), lambda g: GraphAgent(g)),
]


def register_kind(kind: AgentKind) -> None:
    """Serve one more kind of object (before the generic factory call is tried)."""
    KINDS.append(kind)


@dataclass(slots=True)
class LoadedAgent:
    agent: Agent
    # The chat model built for a factory that asked for one; None when nobody did.
    backend: ChatModelBackend | None


def import_target(spec: str) -> object:
    """`package.module:attribute` (or `package.module`) → the object it names."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
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


async def load_agent(target: object, settings: Settings, resources: AsyncExitStack) -> LoadedAgent:
    """The agent `target` stands for; resources a factory opens are closed with `resources`."""
    factory_arguments = _FactoryArguments(settings)
    agent = _as_agent(target)
    if agent is None and callable(target) and not isinstance(target, ModuleType):
        made = await _call_factory(target, factory_arguments, resources)
        agent = _as_agent(made)
        target = made
    if agent is None:
        raise AgentLoadError(
            f"{_describe(target)} is not something the server can serve: expected a compiled "
            "LangGraph graph, @invoke/@stream functions, an MLflow ResponsesAgent, ChatAgent "
            "or ChatModel, or a factory returning one of them"
        )
    return LoadedAgent(agent, factory_arguments.backend)


def _as_agent(target: object) -> Agent | None:
    for kind in KINDS:
        if kind.accepts(target):
            return kind.build(target)
    return None


class _FactoryArguments:
    """What a factory may ask for by parameter name; the model is built only when asked."""

    names = ("model", "tools", "settings")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend: ChatModelBackend | None = None

    async def get(self, name: str) -> object:
        if name == "settings":
            return self.settings
        if name == "tools":
            return select_tools(self.settings.agent_tools)
        if self.backend is None:
            self.backend = await build_chat_model(self.settings)
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
