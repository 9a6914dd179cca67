"""The Databricks backend: databricks-sdk credentials, a serving endpoint on a fake workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from agent_service.app import create_app
from agent_service.models.backends import ModelSetupError
from tests.conftest import ServiceFactory, settings_for
from tests.fakes.databricks_workspace import CLIENT_ID, CLIENT_SECRET, PAT, FakeWorkspace
from tests.wire import HELLO


@pytest.fixture(autouse=True)
def no_databricks_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # databricks-sdk also reads ~/.databrickscfg and DATABRICKS_* variables on its own: keep
    # the developer's real configuration out of these tests.
    for name in (
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
        "DATABRICKS_CLIENT_ID",
        "DATABRICKS_CLIENT_SECRET",
        "DATABRICKS_CONFIG_PROFILE",
        "DATABRICKS_AUTH_TYPE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))


async def start_workspace(
    aiohttp_server: AiohttpServer, **kwargs: Any
) -> tuple[FakeWorkspace, TestServer]:
    workspace = FakeWorkspace(**kwargs)
    return workspace, await aiohttp_server(workspace.app())


def workspace_env(server: TestServer, **auth: str) -> dict[str, str]:
    return {
        "DATABRICKS_SERVING_ENDPOINT": "databricks-claude-sonnet",
        "DATABRICKS_HOST": str(server.make_url("")).rstrip("/"),
        "MODEL_MAX_RETRIES": "0",
        **auth,
    }


async def test_personal_access_token(
    make_service: ServiceFactory, aiohttp_server: AiohttpServer
) -> None:
    workspace, server = await start_workspace(aiohttp_server)
    client = await make_service(workspace_env(server, DATABRICKS_TOKEN=PAT))
    for stream in (False, True):
        response = await client.post("/invocations", json={**HELLO, "stream": stream})
        assert response.status == 200, await response.text()
        assert "Hello from the fake model." in (await response.text()) or stream
    seen = workspace.serving.requests
    assert [r.path for r in seen] == ["/serving-endpoints/chat/completions"] * 2
    assert all(r.body["model"] == "databricks-claude-sonnet" for r in seen)
    assert all(r.headers["Authorization"] == f"Bearer {PAT}" for r in seen)
    info = await (await client.get("/agent/info")).json()
    assert info["model"]["backend"] == "databricks"
    assert "databricks-claude-sonnet" in info["model"]["endpoint"]
    assert PAT not in str(info)


async def test_oauth_service_principal_tokens_are_refreshed(
    make_service: ServiceFactory, aiohttp_server: AiohttpServer
) -> None:
    # Tokens that expire at once: every model call needs a fresh one, and the workspace
    # accepts only the newest.
    workspace, server = await start_workspace(aiohttp_server, token_lifetime_s=0)
    client = await make_service(
        workspace_env(
            server, DATABRICKS_CLIENT_ID=CLIENT_ID, DATABRICKS_CLIENT_SECRET=CLIENT_SECRET
        )
    )
    for _ in range(3):
        response = await client.post("/invocations", json=HELLO)
        assert response.status == 200, await response.text()
    used = [r.headers["Authorization"] for r in workspace.serving.requests]
    assert len(set(used)) == 3, "each call used a newly issued token"
    assert all(u.removeprefix("Bearer ") in workspace.issued for u in used)


async def test_bad_credentials_fail_at_start_up(aiohttp_server: AiohttpServer) -> None:
    _, server = await start_workspace(aiohttp_server)
    settings = settings_for(
        workspace_env(server, DATABRICKS_CLIENT_ID=CLIENT_ID, DATABRICKS_CLIENT_SECRET="wrong")
    )
    app = await create_app(settings)
    with pytest.raises(
        ModelSetupError, match=r"databricks-claude-sonnet.*invalid_client"
    ) as raised:
        async with TestServer(app):
            pass
    assert CLIENT_SECRET not in str(raised.value)
    assert "wrong" not in str(raised.value)


async def test_revoked_token_is_a_502(
    make_service: ServiceFactory, aiohttp_server: AiohttpServer
) -> None:
    _workspace, server = await start_workspace(aiohttp_server)
    client = await make_service(workspace_env(server, DATABRICKS_TOKEN="dapi-revoked"))
    response = await client.post("/invocations", json=HELLO)
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["code"] == "upstream_authentication_failed"
    assert "dapi-revoked" not in error["message"]
