"""A user's verdict on an answer, recorded as MLflow feedback (an assessment) on its trace.

Blocking MLflow calls: the HTTP layer runs `record_feedback` in a thread. The feedback is
readable with MLflow's own tools (`mlflow.get_trace(id).info.assessments`, the MLflow UI).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.entities import AssessmentSource, AssessmentSourceType
from mlflow.exceptions import MlflowException
from mlflow.tracing.constant import TraceMetadataKey

log = logging.getLogger(__name__)

# How often a trace that is not in the store yet is looked for again.
_EXPORT_POLL_S = 0.1

# The assessment's name: Databricks' review app and MLflow's docs use it for end-user ratings.
FEEDBACK_NAME = "user_feedback"
# Where an assessment keeps the key of the request that recorded it.
KEY_METADATA = "agent_service.feedback_key"

# Feedback on one trace is recorded one request at a time in a process: a request sent
# again (a retry, a reloaded page) then finds what the first one recorded under its key.
_trace_locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_trace_locks_guard = threading.Lock()


class TraceNotFound(LookupError):
    """No such trace, or not one this user may rate (the two are not told apart)."""


@dataclass(frozen=True, slots=True)
class Feedback:
    trace_id: str
    helpful: bool
    comment: str | None
    # Who gave it: the signed-in user the platform forwarded, else None (anonymous).
    user: str | None
    # The assessment this one replaces (the user changed their mind), if any.
    replaces: str | None = None
    # The client's name for this verdict: sent again, it is recorded once.
    key: str | None = None


def record_feedback(feedback: Feedback, wait_s: float = 0.0) -> str:
    """Record `feedback`; returns the new assessment's id (or, for a key recorded before,
    that assessment's). Raises TraceNotFound. A trace not yet in the store is waited for up
    to `wait_s`: traces are exported in batches, a fraction of a second after their answer
    (from any worker of the server)."""
    deadline = time.monotonic() + wait_s
    trace = mlflow.get_trace(feedback.trace_id, silent=True)
    while trace is None and time.monotonic() < deadline:
        time.sleep(_EXPORT_POLL_S)
        trace = mlflow.get_trace(feedback.trace_id, silent=True)
    if trace is None:
        raise TraceNotFound(feedback.trace_id)
    owner = trace.info.trace_metadata.get(TraceMetadataKey.TRACE_USER)
    if feedback.user and owner and owner != feedback.user:
        # Someone else's conversation: answer as if it did not exist.
        raise TraceNotFound(feedback.trace_id)
    source = AssessmentSource(
        source_type=AssessmentSourceType.HUMAN, source_id=feedback.user or "anonymous"
    )
    with _lock_of(feedback.trace_id):
        if feedback.key and (recorded := _recorded_under(feedback.trace_id, feedback.key)):
            return recorded
        try:
            return _log(feedback, source)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                # The assessment to replace is not on this trace.
                raise TraceNotFound(feedback.trace_id) from error
            raise


def _lock_of(trace_id: str) -> threading.Lock:
    with _trace_locks_guard:
        lock = _trace_locks.get(trace_id)
        if lock is None:
            lock = _trace_locks[trace_id] = threading.Lock()
        return lock


def _recorded_under(trace_id: str, key: str) -> str | None:
    """The assessment an earlier request with this key recorded on the trace, if any."""
    trace = mlflow.get_trace(trace_id, silent=True)  # read now: the earlier one may be done
    for assessment in trace.info.assessments if trace is not None else ():
        if (assessment.metadata or {}).get(KEY_METADATA) == key:
            return str(assessment.assessment_id)
    return None


def _log(feedback: Feedback, source: AssessmentSource) -> str:
    metadata = {KEY_METADATA: feedback.key} if feedback.key else None
    if feedback.replaces:
        assessment = mlflow.override_feedback(
            trace_id=feedback.trace_id,
            assessment_id=feedback.replaces,
            value=feedback.helpful,
            rationale=feedback.comment,
            source=source,
            metadata=metadata,
        )
    else:
        assessment = mlflow.log_feedback(
            trace_id=feedback.trace_id,
            name=FEEDBACK_NAME,
            value=feedback.helpful,
            rationale=feedback.comment,
            source=source,
            metadata=metadata,
        )
    return str(assessment.assessment_id)


def trace_url_template(
    tracking_uri: str, experiment_id: str | None, databricks_host: str | None
) -> str | None:
    """Where a trace can be looked at, with `{trace_id}` to fill in; None when the tracking
    store has no UI (a local SQLite file)."""
    if not experiment_id:
        return None
    scheme = urlsplit(tracking_uri).scheme
    if scheme in {"http", "https"}:
        base = _without_credentials(tracking_uri).rstrip("/")
        return f"{base}/#/experiments/{experiment_id}/traces?selectedEvaluationId={{trace_id}}"
    if scheme == "databricks" or tracking_uri == "databricks":
        if not databricks_host:
            return None
        host = databricks_host if "://" in databricks_host else f"https://{databricks_host}"
        base = _without_credentials(host).rstrip("/")
        return f"{base}/ml/experiments/{experiment_id}/traces?selectedEvaluationId={{trace_id}}"
    return None


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
