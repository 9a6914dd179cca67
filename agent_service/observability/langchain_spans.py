"""Child spans of a request's trace, from LangChain's callbacks: the graph, each node, each
chat model call (with its token usage) and each tool call, as plain `SpanRecord`s.

Our own handler rather than MLflow's LangChain tracer, for measured reasons: importing
`mlflow.langchain` pulls in pandas (about a second more per worker start), and that tracer
serialises every streamed token into a span event; MLflow's span SDK costs about 0.25 ms per
span on the event loop. Here a span is a small object and nothing is serialised until the
trace is finished. A failure is recorded as the exception's type only: traces never carry
exception text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, ToolMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, LLMResult
from mlflow.entities import SpanType
from mlflow.tracing.constant import SpanAttributeKey

from agent_service.observability.trace_record import SpanRecord

# Model call parameters worth keeping on a chat model span.
_INVOCATION_PARAMS = ("model", "model_name", "temperature", "top_p", "max_tokens", "stop")
END_REASON = "agent_service.end_reason"
INPUTS = SpanAttributeKey.INPUTS
OUTPUTS = SpanAttributeKey.OUTPUTS


class LangChainSpans(BaseCallbackHandler):
    """Records one run's LangChain callbacks as spans under `root`, into `spans`."""

    # Called on the event loop directly: recording a span is cheap and must not be reordered.
    run_inline = True

    # Events no span comes from: LangChain then does not call us for them at all. Not
    # `ignore_agent`: LangChain files the tool events under it.
    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    def __init__(self, root: SpanRecord, spans: list[SpanRecord]) -> None:
        self._root = root
        self._all = spans
        # Open spans by LangChain run id. Runs we do not show (LangGraph's internal
        # runnables) map to the span of their nearest shown ancestor.
        self._spans: dict[UUID, SpanRecord] = {}
        # The spans we opened and have not closed, in the order we opened them.
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
        attributes = span.attributes
        attributes[INPUTS] = {
            "messages": convert_to_openai_messages(messages[0] if messages else [])
        }
        for key in _INVOCATION_PARAMS:
            if key in params:
                attributes[key] = params[key]
        if tools := params.get("tools"):
            attributes[SpanAttributeKey.CHAT_TOOLS] = tools

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        if span is not None and run_id in self._owned:
            generation = response.generations[0][0] if response.generations else None
            if isinstance(generation, ChatGeneration):
                message = generation.message
                span.attributes[OUTPUTS] = convert_to_openai_messages(message)
                if usage := getattr(message, "usage_metadata", None):
                    span.attributes[SpanAttributeKey.CHAT_USAGE] = dict(usage)
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
        span.attributes[INPUTS] = inputs if inputs is not None else input_str

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._spans.get(run_id)
        if span is not None and run_id in self._owned:
            span.attributes[OUTPUTS] = output.content if isinstance(output, ToolMessage) else output
        self._close(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._close(run_id, error=error)

    # --- bookkeeping ------------------------------------------------------------------------

    def close_all(self, reason: str) -> None:
        """End spans a cancelled or failed run left open, innermost first."""
        for run_id in reversed(list(self._owned)):
            span = self._spans[run_id]
            span.attributes[END_REASON] = reason
            span.end("ERROR")
        self._owned.clear()
        self._spans.clear()

    def _parent(self, parent_run_id: UUID | None) -> SpanRecord:
        if parent_run_id is None:
            return self._root
        return self._spans.get(parent_run_id, self._root)

    def _open(self, run_id: UUID, name: str, span_type: str, parent: SpanRecord) -> SpanRecord:
        span = SpanRecord(name, span_type, parent.span_id)
        self._all.append(span)
        self._spans[run_id] = span
        self._owned[run_id] = None
        return span

    def _close(self, run_id: UUID, error: BaseException | None = None) -> None:
        span = self._spans.pop(run_id, None)
        if span is None or run_id not in self._owned:
            return
        del self._owned[run_id]
        if error is None:
            span.end()
            return
        kind = type(error).__name__
        span.add_event("exception", {"exception.type": kind})
        span.end("ERROR", kind)


def _model_name(serialized: dict[str, Any] | None) -> str:
    ids: Sequence[str] = (serialized or {}).get("id") or ()
    return ids[-1] if ids else "chat_model"
