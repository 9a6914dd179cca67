"""Lakebase: a real PostgreSQL server, with its password minted by a fake workspace."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from pytest_aiohttp import AiohttpServer

from agent_service.settings import DatabricksAuth
from agent_service.state.config import parse_location
from agent_service.state.database import PostgresDatabase
from agent_service.state.lakebase import REFRESH_MARGIN_S
from agent_service.state.store import StateStore, StoreOptions, open_store
from tests.databases import PostgresServer
from tests.fakes.databricks_workspace import PAT
from tests.fakes.lakebase import FakeLakebase

TARGETS = {
    "instance": {"lakebase_instance": "agent-state-instance"},
    "endpoint": {"lakebase_endpoint": "projects/p/branches/main/endpoints/primary"},
}


async def open_lakebase(
    postgres_server: PostgresServer, fake: FakeLakebase, aiohttp_server: AiohttpServer, target: str
) -> StateStore:
    server = await aiohttp_server(fake.app())
    database = urlsplit(postgres_server.create_database()).path.lstrip("/")
    # What a Databricks App's database resource sets; sslmode off for the local server.
    env = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres", "PGDATABASE": database}
    location = parse_location("lakebase://?sslmode=disable", libpq_env=env, **TARGETS[target])
    auth = DatabricksAuth(host=str(server.make_url("")).rstrip("/"), token=PAT)
    return await open_store(location, StoreOptions(databricks=auth, pool_size=3))


def pool_of(store: StateStore) -> PostgresDatabase:
    assert isinstance(store.db, PostgresDatabase)
    return store.db


@pytest.mark.parametrize("target", sorted(TARGETS))
async def test_connections_log_in_with_a_minted_token_that_is_reused(
    postgres_server: PostgresServer, aiohttp_server: AiohttpServer, target: str
) -> None:
    fake = FakeLakebase(credential_lifetime_s=3600)
    store = await open_lakebase(postgres_server, fake, aiohttp_server, target)
    try:
        async with pool_of(store).connection() as first, pool_of(store).connection() as second:
            assert first.info.password == fake.credentials[0]
            assert second.info.password == fake.credentials[0]
        assert len(fake.credentials) == 1
        request = fake.requests[0]
        if target == "instance":
            assert request["path"] == "/api/2.0/database/credentials"
            assert request["instance_names"] == ["agent-state-instance"]
        else:
            assert request["path"] == "/api/2.0/postgres/credentials"
            assert request["endpoint"] == "projects/p/branches/main/endpoints/primary"
        assert store.describe()["backend"] == "lakebase"
        assert "lakebase-token" not in str(store.describe())
    finally:
        await store.close()


@pytest.mark.parametrize("target", sorted(TARGETS))
async def test_a_token_close_to_expiry_is_replaced_before_a_new_connection(
    postgres_server: PostgresServer, aiohttp_server: AiohttpServer, target: str
) -> None:
    # Every token the fake mints is already inside the refresh margin.
    fake = FakeLakebase(credential_lifetime_s=REFRESH_MARGIN_S / 2)
    store = await open_lakebase(postgres_server, fake, aiohttp_server, target)
    try:
        minted = len(fake.credentials)
        # As many connections as the pool holds: at least one is opened now.
        async with (
            pool_of(store).connection() as first,
            pool_of(store).connection() as second,
            pool_of(store).connection() as third,
        ):
            passwords = {first.info.password, second.info.password, third.info.password}
        assert len(fake.credentials) > minted
        assert fake.credentials[-1] in passwords
    finally:
        await store.close()


def test_lakebase_needs_to_know_which_database_to_mint_for() -> None:
    env = {"PGHOST": "instance.database.cloud.databricks.com", "PGUSER": "sp-client-id"}
    with pytest.raises(ValueError, match="LAKEBASE_INSTANCE_NAME"):
        parse_location("lakebase", libpq_env=env)
    with pytest.raises(ValueError, match="PGHOST"):
        parse_location("lakebase", libpq_env={"PGUSER": "me"}, lakebase_instance="i")
    with pytest.raises(ValueError, match="no password"):
        parse_location("lakebase://me:pw@host/db", lakebase_instance="i")
    location = parse_location("lakebase", libpq_env=env, lakebase_instance="agent-db")
    assert location.params["sslmode"] == "require"
    assert location.describe() == (
        "lakebase://sp-client-id@instance.database.cloud.databricks.com:5432/"
        "databricks_postgres (instance agent-db)"
    )
