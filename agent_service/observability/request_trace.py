"""The trace of one request, recorded in the worker: a root span of type AGENT named after the
task, whose inputs are the validated request and whose output is the answer as the task's
reducer builds it; child spans from LangChain's callbacks (`langchain_spans.py`) and from
MLflow's API used inside the agent (`mlflow_bridge.py`). When it ends it goes to the spool
as one line; nothing waits for the export.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.entities import SpanType

from agent_service.errors import ServiceError
from agent_service.observability.langchain_spans import END_REASON, INPUTS, OUTPUTS, LangChainSpans
from agent_service.observability.mlflow_bridge import BridgedRequest, MlflowBridge
from agent_service.observability.mlflow_format import from_line
from agent_service.observability.redaction import redact
from agent_service.observability.trace_record import SpanRecord, TraceRecord, new_trace_id

log = logging.getLogger(__name__)

# Trace metadata keys of our own, next to MLflow's session/user/model keys.
META_REQUEST_ID = "agent_service.request_id"
META_TASK = "agent_service.task"
META_BACKEND = "agent_service.model_backend"
META_ENDPOINT = "agent_service.model_endpoint"
# The trace of a background run's part after another worker took it over: the response it
# goes on with (its first part's trace has the same request id).
META_RESUMES = "agent_service.resumes_response"
ATTR_ERROR_CODE = "agent_service.error_code"
ATTR_ERROR_MESSAGE = "agent_service.error_message"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a trace records about a request besides its body."""

    task: str
    request_id: str
    backend_kind: str
    backend_endpoint: str
    session_id: str | None = None
    user: str | None = None
    # A resumed background run: the id of the response it goes on with.
    resumes: str | None = None


class RequestTrace:
    """The root span of one request and the recorder of its children."""

    def __init__(
        self,
        task: str,
        body: Mapping[str, Any],
        experiment_id: str,
        metadata: dict[str, str],
        submit: Callable[[TraceRecord], object],
        bridge: MlflowBridge | None,
    ) -> None:
        root = SpanRecord(task, SpanType.AGENT, None)
        root.attributes[INPUTS] = _without_nulls(body)
        self.record = TraceRecord(new_trace_id(), experiment_id, metadata, [root])
        self.recorder = LangChainSpans(root, self.record.spans)
        self._root = root
        self._submit = submit
        self._bridge = bridge
        self._bridged: BridgedRequest | None = (
            bridge.enter(self.record, root) if bridge is not None else None
        )
        self._ended = False

    @property
    def trace_id(self) -> str:
        return self.record.trace_id

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """While the agent runs, the request's root is MLflow's current span: spans the agent
        opens with MLflow's API, and `mlflow.update_current_trace`, land in this trace."""
        if self._bridge is None or self._bridged is None:
            yield
            return
        with self._bridge.current(self._bridged):
            yield

    def end(
        self, output: Any, *, reason: str = "completed", error: ServiceError | None = None
    ) -> None:
        """End the trace: OK when the run completed, ERROR (with the partial output and the
        reason) when it failed, was cancelled or timed out; queue it for export. Never
        raises."""
        if self._ended:
            return
        self._ended = True
        try:
            self.recorder.close_all(reason)
            attributes = self._root.attributes
            attributes[END_REASON] = reason
            if error is not None:
                attributes[ATTR_ERROR_CODE] = error.code
                attributes[ATTR_ERROR_MESSAGE] = redact(error.message)
            attributes[OUTPUTS] = output
            self._root.end("OK" if reason == "completed" else "ERROR")
            if self._bridge is not None and self._bridged is not None:
                self._bridge.leave(self.record, self._bridged)
            self._submit(self.record)
        except Exception:
            log.exception("Could not end the trace of this request")

    def as_returned(self) -> dict[str, Any]:
        """The whole trace as MLflow's `Trace.to_dict()` gives it (for
        `databricks_options.return_trace`), from what this request recorded: no waiting
        for the export, no lock shared with other requests."""
        return from_line(self.record.to_line_dict()).to_dict()


def _without_nulls(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request without the fields a client sent as null. The top level only: walking
    every nested value held the event loop for a second on a body of 100,000 objects."""
    return {key: value for key, value in body.items() if value is not None}
