"""AGENT names what a worker serves: the kinds of objects accepted, factories called once per
worker with what they ask for, resources opened and closed with the worker, and errors that
say what to change."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from agent_service.agents.base import AgentLoadError
from agent_service.agents.default_graph import AgentGraph, build_graph
from agent_service.agents.loader import import_target, load_agent
from agent_service.models import backends
from agent_service.models.offline import OfflineChatModel
from agent_service.settings import BACKENDS, Settings, SettingsError
from tests.conftest import ServiceFactory
from tests.wire import HELLO

calls: list[dict[str, Any]] = []
events: list[str] = []


def factory_asking_for_everything(
    model: BaseChatModel, tools: Sequence[BaseTool], settings: Settings
) -> AgentGraph:
    calls.append({"model": model, "tools": tools, "settings": settings})
    return build_graph(model, tools)


def factory_asking_for_nothing() -> AgentGraph:
    calls.append({})
    return build_graph(OfflineChatModel())


def factory_with_an_unknown_parameter(database_url: str) -> AgentGraph:
    raise AssertionError("never called")


async def async_factory(model: BaseChatModel) -> AgentGraph:
    return build_graph(model)


async def factory_with_resources(model: BaseChatModel) -> AsyncIterator[AgentGraph]:
    events.append("opened")
    yield build_graph(model)
    events.append("closed")


GRAPH = build_graph(OfflineChatModel())
NOT_AN_AGENT = 42


@pytest.fixture(autouse=True)
def _forget() -> None:
    calls.clear()
    events.clear()


async def test_the_default_agent_is_a_factory_named_by_the_agent_setting(
    make_service: ServiceFactory,
) -> None:
    assert Settings().agent == "agent_service.agents.default_graph:build_graph"
    client = await make_service()
    info = await (await client.get("/agent/info")).json()
    assert info["model"]["backend"] == "offline"
    response = await client.post("/invocations", json=HELLO)
    assert response.status == 200


async def test_a_factory_gets_what_it_names(make_service: ServiceFactory) -> None:
    client = await make_service(
        {
            "AGENT": f"{__name__}:factory_asking_for_everything",
            "AGENT_TOOLS": "calculator",
            "AGENT_NAME": "named",
        }
    )
    [call] = calls
    assert isinstance(call["model"], OfflineChatModel)
    assert [tool.name for tool in call["tools"]] == ["calculator"]
    assert call["settings"].agent_name == "named"
    assert (await client.post("/invocations", json=HELLO)).status == 200


async def test_a_factory_that_asks_for_no_model_gets_none_built(
    make_service: ServiceFactory,
) -> None:
    client = await make_service({"AGENT": f"{__name__}:factory_asking_for_nothing"})
    assert calls == [{}]
    info = await (await client.get("/agent/info")).json()
    assert info["model"]["backend"] == "agent-defined"


async def test_async_factories_are_awaited(make_service: ServiceFactory) -> None:
    client = await make_service({"AGENT": f"{__name__}:async_factory"})
    assert (await client.post("/invocations", json=HELLO)).status == 200


async def test_resources_of_a_generator_factory_live_as_long_as_the_worker() -> None:
    settings = Settings.from_env({"AGENT_TRACING": "false"})
    async with AsyncExitStack() as resources:
        loaded = await load_agent(factory_with_resources, settings, resources)
        assert events == ["opened"]
        assert loaded.agent.kind.startswith("LangGraph")
    assert events == ["opened", "closed"]


async def test_a_compiled_graph_is_served_as_it_is(make_service: ServiceFactory) -> None:
    client = await make_service({"AGENT": f"{__name__}:GRAPH"})
    answer = await (await client.post("/invocations", json=HELLO)).json()
    assert answer["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_such_module_anywhere:graph", "cannot import 'no_such_module_anywhere'"),
        (f"{__name__}:missing", "has no 'missing'"),
        (f"{__name__}:NOT_AN_AGENT", "is not something the server can serve"),
        (f"{__name__}:factory_with_an_unknown_parameter", "parameter 'database_url'"),
    ],
)
async def test_an_agent_that_cannot_be_served_stops_start_up_saying_why(
    spec: str, says: str
) -> None:
    settings = Settings.from_env({"AGENT_TRACING": "false"})
    with pytest.raises(AgentLoadError, match=says):
        async with AsyncExitStack() as resources:
            await load_agent(import_target(spec), settings, resources)


def test_the_agent_setting_must_look_like_an_import_path() -> None:
    with pytest.raises(
        SettingsError, match=re.escape("AGENT='my agent.py': expected package.module")
    ):
        Settings.from_env({"AGENT": "my agent.py"})
    assert Settings.from_env({"AGENT": "pkg.mod:obj.attr"}).agent == "pkg.mod:obj.attr"


def test_every_model_backend_setting_has_a_builder() -> None:
    assert set(backends.BACKENDS) == set(BACKENDS)
