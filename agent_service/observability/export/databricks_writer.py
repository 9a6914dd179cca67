"""Traces to a Databricks workspace (experiment traces), several at once, one set of credentials.

MLflow's own export sends a trace in three calls: `StartTraceV3`, a request for an upload
credential, and the upload of the spans (`traces.json`) to the signed URL it gets. It also
resolves the workspace's host credentials again for every call, which builds a new
databricks-sdk client and probes the host's metadata (`/.well-known/databricks-config`) each
time. Here the three calls are MLflow's own (its REST store and its Databricks artifact
repository), made for `CONCURRENT_TRACES` traces at once over kept-alive connections, and the
host credentials are resolved once per `CREDENTIALS_TTL_S` (the databricks-sdk client MLflow
keeps for them refreshes OAuth tokens itself).

Databricks has no batch call for experiment traces: a batch is as many concurrent calls. A
replayed trace (after an interrupted export) is sent again: `StartTraceV3` of a trace the
workspace has replaces it, and its upload overwrites the same file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlflow.store.artifact.databricks_artifact_repo import DatabricksArtifactRepository
from mlflow.tracing.utils.artifact_utils import get_artifact_uri_for_trace
from mlflow.tracking._tracking_service.utils import _get_store
from mlflow.utils.rest_utils import MlflowHostCreds

from agent_service.observability.mlflow_format import MlflowTrace

CONCURRENT_TRACES = 8
# Host credentials are resolved again after this long (a changed profile or secret is seen).
CREDENTIALS_TTL_S = 300.0


class HostCredentials:
    """MLflow's host credentials for a tracking URI, resolved once per `ttl_s`."""

    def __init__(self, resolve: Callable[[], MlflowHostCreds], ttl_s: float) -> None:
        self._resolve = resolve
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._creds: MlflowHostCreds | None = None
        self._at = 0.0
        self.resolved = 0

    def __call__(self) -> MlflowHostCreds:
        with self._lock:
            if self._creds is None or time.monotonic() - self._at > self._ttl_s:
                self._creds = self._resolve()
                self._at = time.monotonic()
                self.resolved += 1
            return self._creds


class _TraceArtifacts(DatabricksArtifactRepository):
    """MLflow's artifact repository for one trace, with the writer's host credentials
    instead of a fresh resolution (and host probe) per call."""

    def __init__(self, artifact_uri: str, credentials: HostCredentials) -> None:
        super().__init__(artifact_uri)
        self._credentials = credentials

    def _call_endpoint(
        self,
        service: Any,
        api: Any,
        json_body: Any = None,
        path_params: Any = None,
        retry_timeout_seconds: Any = None,
    ) -> Any:
        from mlflow.store.artifact import databricks_artifact_repo as repo
        from mlflow.utils.rest_utils import call_endpoint

        endpoint, method = repo._SERVICE_AND_METHOD_TO_INFO[service][api]
        if path_params:
            endpoint = endpoint.format(**path_params)
        return call_endpoint(
            host_creds=self._credentials(),
            endpoint=endpoint,
            method=method,
            json_body=json_body,
            response_proto=api.Response(),
            retry_timeout_seconds=retry_timeout_seconds,
        )


class DatabricksWriter:
    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._store = _get_store(tracking_uri)  # type: ignore[no-untyped-call]
        self.credentials = HostCredentials(self._store.get_host_creds, CREDENTIALS_TTL_S)
        # The REST store asks for its host credentials before every call.
        self._store.get_host_creds = self.credentials
        self._pool = ThreadPoolExecutor(CONCURRENT_TRACES, thread_name_prefix="databricks-trace")

    def close(self) -> None:
        self._pool.shutdown()

    def write(self, traces: Sequence[MlflowTrace]) -> None:
        # list(): every call's exception is raised here, the batch is not taken off the spool.
        list(self._pool.map(self._send, traces))

    def _send(self, trace: MlflowTrace) -> None:
        info = self._store.start_trace(trace.trace_info())
        artifacts = _TraceArtifacts(get_artifact_uri_for_trace(info), self.credentials)
        artifacts.upload_trace_data(trace_data_json(trace))


def trace_data_json(trace: MlflowTrace) -> str:
    """`json.dumps(trace.data.to_dict(), cls=TraceJSONEncoder, ensure_ascii=False)`, from the
    spans' JSON made once."""
    trace_id = trace.trace_id_b64
    return '{"spans": [' + ", ".join(span.json(trace_id) for span in trace.spans) + "]}"
