"""STATE_STORE: what each form means, and what is refused before anything connects."""

from __future__ import annotations

import pytest

from agent_service.state.config import DEFAULT_STORE, StoreConfigError, parse_location


def test_the_default_is_a_sqlite_file_next_to_the_app() -> None:
    location = parse_location("")
    assert DEFAULT_STORE.startswith("sqlite:///")
    assert location.kind == "sqlite"
    assert location.path == "agent_state.db"


def test_sqlite_paths_relative_and_absolute() -> None:
    assert parse_location("sqlite:///data/state.db").path == "data/state.db"
    assert parse_location("sqlite:////var/lib/agent/state.db").path == "/var/lib/agent/state.db"


@pytest.mark.parametrize("value", ["sqlite:///:memory:", "sqlite://", "sqlite:///"])
def test_sqlite_needs_a_file_every_worker_can_share(value: str) -> None:
    with pytest.raises(StoreConfigError, match="needs a file"):
        parse_location(value)


def test_postgresql_keeps_the_password_out_of_what_it_shows() -> None:
    location = parse_location("postgresql://agent:pa%40ss@db.internal:6543/state?sslmode=require")
    assert location.params == {
        "host": "db.internal",
        "port": "6543",
        "user": "agent",
        "password": "pa@ss",
        "dbname": "state",
        "sslmode": "require",
    }
    assert location.describe() == "postgresql://agent@db.internal:6543/state"
    assert "pa@ss" not in repr(location)


@pytest.mark.parametrize("value", ["off", "OFF", "none"])
def test_state_can_be_switched_off(value: str) -> None:
    assert not parse_location(value).enabled


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("mysql://db/state", "unknown scheme"),
        ("state.db", "expected sqlite"),
        ("postgresql:///state", "needs a host"),
    ],
)
def test_unusable_values_say_why(value: str, complaint: str) -> None:
    with pytest.raises(StoreConfigError, match=complaint):
        parse_location(value)
