"""`agent-server`'s options and the gunicorn configuration they become."""

from __future__ import annotations

import pytest

from agent_service.process.cli import parse_args
from agent_service.process.server_options import WORKER_CLASS, gunicorn_options
from agent_service.settings import Settings, SettingsError


def test_defaults_come_from_the_environment() -> None:
    settings = Settings.from_env({"DATABRICKS_APP_PORT": "8123", "WEB_CONCURRENCY": "3"})
    args = parse_args([], settings)
    assert (args.host, args.port, args.workers, args.reload) == ("127.0.0.1", 8123, 3, False)
    options = gunicorn_options(settings, host=args.host, port=args.port, workers=args.workers)
    assert options["bind"] == ["127.0.0.1:8123"]
    assert options["workers"] == 3


def test_flags_override() -> None:
    settings = Settings.from_env({})
    args = parse_args(
        ["--host", "0.0.0.0", "--port", "8001", "--workers", "4", "--reload"], settings
    )
    options = gunicorn_options(
        settings, host=args.host, port=args.port, workers=args.workers, reload=args.reload
    )
    assert options["bind"] == ["0.0.0.0:8001"]
    assert options["workers"] == 4
    assert options["reload"] is True
    assert options["worker_class"] == WORKER_CLASS


def test_the_agent_flag_names_what_to_serve() -> None:
    settings = Settings.from_env({})
    assert parse_args([], settings).agent is None  # AGENT, else the default agent
    assert parse_args(["--agent", "my_agent.graph:graph"], settings).agent == (
        "my_agent.graph:graph"
    )


def test_graceful_timeout_covers_the_drain() -> None:
    options = gunicorn_options(Settings.from_env({"DRAIN_SECONDS": "42.5"}))
    assert options["graceful_timeout"] > 42.5


def test_the_idle_timeout_is_gunicorns_keepalive_in_whole_seconds() -> None:
    options = gunicorn_options(Settings.from_env({"IDLE_TIMEOUT_SECONDS": "12.5"}))
    assert options["keepalive"] == 13


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABRICKS_APP_PORT": "eighty"}, "DATABRICKS_APP_PORT='eighty': expected an integer"),
        ({"AGENT_TASK": "agent/v9/chat"}, "AGENT_TASK='agent/v9/chat': expected one of"),
        ({"MODEL_BACKEND": "databricks"}, "needs DATABRICKS_SERVING_ENDPOINT"),
        ({"OPENAI_API_KEY": "k"}, "needs OPENAI_MODEL"),
        ({"TRACE_SAMPLING_RATIO": "1.5"}, "expected a value between 0.0 and 1.0"),
        ({"AGENT_TRACING": "maybe"}, "expected true or false"),
        ({"AGENT_API_KEYS": " , "}, "AGENT_API_KEYS is set but holds no key"),
        (
            {"DATABRICKS_APP_NAME": "a", "DATABRICKS_APP_PORT": "8000", "DRAIN_SECONDS": "20"},
            "DRAIN_SECONDS=20.0: expected a value between 0.0 and 8.0 on Databricks Apps, "
            "which kills an app 15 s after SIGTERM",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_backend_is_chosen_by_what_is_configured() -> None:
    assert Settings.from_env({}).backend == "offline"
    assert Settings.from_env({"OPENAI_API_KEY": "k", "OPENAI_MODEL": "m"}).backend == "openai"
    databricks = Settings.from_env({"DATABRICKS_SERVING_ENDPOINT": "e", "OPENAI_MODEL": "m"})
    assert databricks.backend == "databricks"
    assert "secret" not in repr(
        Settings.from_env({"OPENAI_API_KEY": "secret", "OPENAI_MODEL": "m"})
    )
