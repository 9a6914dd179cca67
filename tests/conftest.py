"""Shared fixtures: the real app factory on a test server, fakes at the network seam."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer

from agent_service.agents.functions import REGISTERED, STARTUP_HOOKS
from agent_service.app import create_app
from agent_service.settings import Settings
from tests.fakes.openai_server import FakeOpenAI

ServiceFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def settings_for(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `env`, with tracing off unless the test turns it on: the tests of
    tracing point it at a store in a temporary folder, never at ./mlflow.db. Likewise the
    state store is off unless the test gives one (never ./agent_state.db)."""
    return Settings.from_env({"AGENT_TRACING": "false", "STATE_STORE": "off", **(env or {})})


@pytest.fixture
def make_service(aiohttp_client: AiohttpClient, tmp_path: Path) -> ServiceFactory:
    """Start the service from `create_app` with settings from an environment mapping; the
    state store is a SQLite file in the test's folder unless `env` says otherwise."""

    async def start(
        env: Mapping[str, str] | None = None,
        *,
        agent: object | None = None,
        graph: object | None = None,
    ) -> TestClient[Any, Any]:
        """`agent`: anything AGENT may name (`graph` is the same, for older tests)."""
        env = {"STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}", **(env or {})}
        app = await create_app(settings_for(env), agent=agent if agent is not None else graph)
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def service(make_service: ServiceFactory) -> TestClient[Any, Any]:
    """The service with default settings: the offline model, agent/v1/chat."""
    return await make_service()


@pytest.fixture
async def fake_openai(aiohttp_server: AiohttpServer) -> tuple[FakeOpenAI, TestServer]:
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.app())
    return fake, server


def openai_env(server: TestServer, **extra: str) -> dict[str, str]:
    """Settings that point the service at the fake endpoint, without retries."""
    return {
        "OPENAI_BASE_URL": str(server.make_url("/v1")),
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_MODEL": "fake-model",
        "MODEL_MAX_RETRIES": "0",
        **extra,
    }


@asynccontextmanager
async def sdk_on_store(
    aiohttp_server: AiohttpServer, model_server: TestServer, store_url: str, **extra: str
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The OpenAI SDK, without retries, on a service with a state store and the fake model."""
    env = openai_env(model_server, STATE_STORE=store_url, **extra)
    server = await aiohttp_server(await create_app(settings_for(env)))
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k", max_retries=0)
    try:
        yield client
    finally:
        await client.close()


# --- tracing to a real store ---------------------------------------------------------------


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One store for the session (creating its schema takes seconds); one experiment per test.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def spool_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("spool"))


@pytest.fixture
def tracing_env(tracking_uri: str, spool_base: str) -> dict[str, str]:
    return {
        "AGENT_TRACING": "true",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "TRACE_SPOOL_DIR": spool_base,
        "MLFLOW_EXPERIMENT_NAME": f"test-{uuid.uuid4().hex[:12]}",
        "AGENT_VERSION": "v-test",
    }


# --- @invoke / @stream registrations ---------------------------------------------------------


@pytest.fixture
def fresh_registrations() -> Iterator[None]:
    """As in a worker of its own: no @invoke/@stream functions or start-up hooks registered,
    no example imported yet; the process's own registrations come back afterwards."""
    saved = REGISTERED.invoke, REGISTERED.stream, list(STARTUP_HOOKS)
    REGISTERED.invoke = REGISTERED.stream = None
    STARTUP_HOOKS.clear()
    _forget_examples()
    yield
    REGISTERED.invoke, REGISTERED.stream = saved[0], saved[1]
    STARTUP_HOOKS[:] = saved[2]
    _forget_examples()


def _forget_examples() -> None:
    for name in [name for name in sys.modules if name.startswith("examples.")]:
        del sys.modules[name]


# The state tests' databases: SQLite files and fresh PostgreSQL databases (tests/databases.py).
from tests.databases import postgres_server, state_url  # noqa: E402, F401
