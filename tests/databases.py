"""Real databases for the state tests: a SQLite file in the test's folder, or a fresh
PostgreSQL database on 127.0.0.1:5432 created for the test and dropped after the run.

Several engineers and CI run tests on one PostgreSQL server at the same time: every database
is named after this run (pid and a random part) and dropped at the end. Without a reachable
server the PostgreSQL variants skip with a message; in CI (`CI=true`) they fail instead.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
PG_URL = "postgresql://postgres@127.0.0.1:5432/{name}"
BACKENDS = ("sqlite", "postgresql")


class PostgresServer:
    def __init__(self) -> None:
        self.prefix = f"agent_state_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._counter = itertools.count(1)
        self.created: list[str] = []

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"{self.prefix}_{next(self._counter)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return PG_URL.format(name=name)

    def drop_all(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_reachable() -> str | None:
    """None when the server answers, else why not."""
    try:
        with psycopg.connect(PG_ADMIN):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    problem = postgres_reachable()
    if problem is not None:
        message = (
            f"PostgreSQL is not reachable on 127.0.0.1:5432 ({problem}). These tests need a "
            "server there with trust authentication for user postgres (Debian: apt-get install "
            "postgresql); CI runs them."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer()
    yield server
    server.drop_all()


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'state.db'}"


@pytest.fixture(params=BACKENDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty state store: the same test runs against SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
