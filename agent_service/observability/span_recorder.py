"""Child spans of a request's trace, from LangChain's callbacks: the graph, each node, each
chat model call (with its token usage) and each tool call.

Our own handler rather than MLflow's LangChain tracer, for two measured reasons: importing
`mlflow.langchain` pulls in pandas (about a second more per worker start), and that tracer
serialises every streamed token into a span event, which costs more per token than the rest
of our streaming path together. Here a model call is one span whatever its length.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, ToolMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, LLMResult
from mlflow.entities import LiveSpan, SpanStatusCode, SpanType
from mlflow.tracing.constant import SpanAttributeKey
from mlflow.tracing.fluent import start_span_no_context

log = logging.getLogger(__name__)

# Model call parameters worth keeping on a chat model span.
_INVOCATION_PARAMS = ("model", "model_name", "temperature", "top_p", "max_tokens", "stop")


class SpanRecorder(BaseCallbackHandler):
    """Records one run's LangChain callbacks as MLflow spans under `root`."""

    # Called on the event loop directly: recording a span is cheap and must not be reordered.
    run_inline = True

    def __init__(self, root: LiveSpan) -> None:
        self._root = root
        # Open spans by LangChain run id. Runs we do not show (LangGraph's internal
        # runnables) map to the span of their nearest shown ancestor.
        self._spans: dict[UUID, LiveSpan] = {}
        # The spans we opened, in the order we opened them.
        self._owned: dict[UUID, None] = {}

    # --- graph and nodes --------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        parent = self._parent(parent_run_id)
        node = (metadata or {}).get("langgraph_node")
        if parent_run_id is None:
            self._open(run_id, name or "graph", SpanType.CHAIN, parent)
        elif node is not None and node == name:
            self._open(run_id, node, SpanType.CHAIN, parent)
        else:
            self._spans[run_id] = parent

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error=error)

    # --- chat models ------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        invocation_params: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        params = invocation_params or {}
        span = self._open(
            run_id,
            name or _model_name(serialized),
            SpanType.CHAT_MODEL,
            self._parent(parent_run_id),
        )
        span.set_inputs({"messages": convert_to_openai_messages(messages[0] if messages else [])})
        span.set_attributes({key: params[key] for key in _INVOCATION_PARAMS if key in params})
        if tools := params.get("tools"):
            span.set_attribute(SpanAttributeKey.CHAT_TOOLS, tools)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        if span is not None and run_id in self._owned:
            generation = response.generations[0][0] if response.generations else None
            if isinstance(generation, ChatGeneration):
                message = generation.message
                span.set_outputs(convert_to_openai_messages(message))
                if usage := getattr(message, "usage_metadata", None):
                    span.set_attribute(SpanAttributeKey.CHAT_USAGE, dict(usage))
        self._close(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error=error)

    # --- tools ------------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        tool = name or (serialized or {}).get("name") or "tool"
        span = self._open(run_id, tool, SpanType.TOOL, self._parent(parent_run_id))
        span.set_inputs(inputs if inputs is not None else input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        if span is not None and run_id in self._owned:
            span.set_outputs(output.content if isinstance(output, ToolMessage) else output)
        self._close(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error=error)

    # --- bookkeeping ------------------------------------------------------------------------

    def close_all(self, reason: str) -> None:
        """End spans a cancelled or failed run left open, innermost first."""
        for run_id in reversed(list(self._owned)):
            span = self._spans.pop(run_id)
            span.set_attribute("agent_service.end_reason", reason)
            span.end(status=SpanStatusCode.ERROR)
        self._owned.clear()
        self._spans.clear()

    def _parent(self, parent_run_id: UUID | None) -> LiveSpan:
        if parent_run_id is None:
            return self._root
        return self._spans.get(parent_run_id, self._root)

    def _open(self, run_id: UUID, name: str, span_type: str, parent: LiveSpan) -> LiveSpan:
        span = start_span_no_context(name, span_type=span_type, parent_span=parent)
        self._spans[run_id] = span
        self._owned[run_id] = None
        return span

    def _close(self, run_id: UUID, error: BaseException | None = None) -> None:
        span = self._spans.pop(run_id, None)
        if span is None or run_id not in self._owned:
            return
        del self._owned[run_id]
        if error is not None:
            # Cancellation is a BaseException, which MLflow does not record as an exception.
            span.record_exception(error if isinstance(error, Exception) else type(error).__name__)
            span.end(status=SpanStatusCode.ERROR)
        else:
            span.end()


def _model_name(serialized: dict[str, Any] | None) -> str:
    ids: Sequence[str] = (serialized or {}).get("id") or ()
    return ids[-1] if ids else "chat_model"
