"""The MLflow tracking store a worker traces to: pointed at, its experiment found or created,
this version's LoggedModel found or created. Blocking: run it in a thread at start-up."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities import LoggedModelStatus
from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY
from mlflow.tracing.utils.environment import resolve_env_metadata
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

from agent_service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connection:
    experiment_id: str
    model_id: str
    # What MLflow's span processor puts in the metadata of every trace of this process:
    # where the code runs from (source, git commit, user) and the trace schema version.
    process_metadata: dict[str, str]


def connect(settings: Settings, version: str) -> Connection:
    """Point MLflow at the store; find or create the experiment and this version's
    LoggedModel."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    with _store_lock(settings.tracking_uri):
        client = MlflowClient(settings.tracking_uri)
        experiment_id = _experiment(client, settings)
        model_id = _logged_model(client, experiment_id, version)
    metadata = {str(key): str(value) for key, value in resolve_env_metadata().items()}
    metadata[TRACE_SCHEMA_VERSION_KEY] = str(TRACE_SCHEMA_VERSION)
    return Connection(experiment_id, model_id, metadata)


def _experiment(client: MlflowClient, settings: Settings) -> str:
    if settings.experiment_id:
        return str(client.get_experiment(settings.experiment_id).experiment_id)
    name = settings.experiment_name or settings.agent_name
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name))


def _logged_model(client: MlflowClient, experiment_id: str, name: str) -> str:
    """The LoggedModel of this version: found by name, or created (once per version)."""
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"name = '{name}'", max_results=1
    )
    if found:
        return str(found[0].model_id)
    model = client.create_logged_model(
        experiment_id, name=name, tags={MLFLOW_MODEL_IS_EXTERNAL: "true"}, model_type="agent"
    )
    # The code lives outside MLflow (this repository): nothing to upload, ready at once.
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    log.info("Created LoggedModel %s (%s)", name, model.model_id)
    return str(model.model_id)


@contextlib.contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise workers creating one SQLite store: two processes running its schema
    migrations at once break it."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
