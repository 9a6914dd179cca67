"""Register the running version of the agent in Unity Catalog: `make register`.

    UC_MODEL_NAME=main.agents.support_bot make register

Finds (or creates) the LoggedModel of this version exactly as a worker does at start-up,
gives it the MLmodel file a registry needs, and registers it under UC_MODEL_NAME in the
registry at MLFLOW_REGISTRY_URI (default `databricks-uc`). Run it once per release, not at
every start. It needs the `register` dependency group (pandas, for MLflow's model files).
"""

from __future__ import annotations

import logging
import logging.config
import sys
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from agent_service.observability.logs import logging_config
from agent_service.observability.tracking_store import connect
from agent_service.observability.versioning import version_name
from agent_service.settings import Settings, SettingsError

log = logging.getLogger(__name__)

_MLMODEL = "MLmodel"


def register(settings: Settings) -> str:
    """Register this version; returns `<name>/<version number>`."""
    if not settings.uc_model_name:
        raise SettingsError("UC_MODEL_NAME is required: catalog.schema.model")
    name = version_name(settings.version_name, settings.agent_version)
    status = connect(settings, name)
    client = MlflowClient(settings.tracking_uri)
    _ensure_model_file(client, status.model_id)
    mlflow.set_registry_uri(settings.registry_uri)
    version = mlflow.register_model(f"models:/{status.model_id}", settings.uc_model_name)
    log.info(
        "Registered %s (LoggedModel %s) as %s version %s in %s",
        name,
        status.model_id,
        settings.uc_model_name,
        version.version,
        settings.registry_uri,
    )
    return f"{settings.uc_model_name}/{version.version}"


def _ensure_model_file(client: MlflowClient, model_id: str) -> None:
    """Registries want an MLmodel file with a signature; the code itself lives in git."""
    if any(entry.path == _MLMODEL for entry in client.list_logged_model_artifacts(model_id)):
        return
    from mlflow.models.utils import get_external_mlflow_model_spec

    spec = get_external_mlflow_model_spec(client.get_logged_model(model_id))
    with tempfile.TemporaryDirectory() as folder:
        spec.save(str(Path(folder) / _MLMODEL))
        client.log_model_artifacts(model_id, folder)


def main() -> None:
    try:
        settings = Settings.from_env()
        logging.config.dictConfig(logging_config(settings.log_level))
        print(register(settings))
    except (SettingsError, mlflow.MlflowException) as exc:
        sys.exit(f"register: {exc}")


if __name__ == "__main__":
    main()
