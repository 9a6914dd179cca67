"""`make register`: this version's LoggedModel registered in a model registry.

Unity Catalog itself needs a workspace; the same code path runs here against a local
registry (MLFLOW_REGISTRY_URI), which accepts the same three-level name."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from agent_service.process.register import register
from agent_service.settings import Settings, SettingsError


def test_registers_this_version(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings.from_env(
        {
            "MLFLOW_TRACKING_URI": store,
            "MLFLOW_REGISTRY_URI": store,
            "MLFLOW_EXPERIMENT_NAME": "agents",
            "UC_MODEL_NAME": "main.agents.support_bot",
            "AGENT_VERSION": "1.2.3",
        }
    )
    assert register(settings) == "main.agents.support_bot/1"
    assert register(settings) == "main.agents.support_bot/2", "a second release, same model"
    client = MlflowClient(store, registry_uri=store)
    experiment = client.get_experiment_by_name("agents")
    assert experiment is not None
    [logged] = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert logged.name == "agent-service-1-2-3", "MLflow refuses dots in names"
    version = client.get_model_version("main.agents.support_bot", "1")
    assert version.source == f"models:/{logged.model_id}"
    paths = [entry.path for entry in client.list_logged_model_artifacts(logged.model_id)]
    assert "MLmodel" in paths


def test_needs_a_model_name() -> None:
    with pytest.raises(SettingsError, match="UC_MODEL_NAME"):
        register(Settings.from_env({}))
