"""agent/v1/responses: OpenAI Responses and MLflow ResponsesAgent (PROTOCOLS.md §4).

The stream is OpenAI's complete event sequence (created → in_progress → item added → part
added → text deltas → … → completed), numbered from 0. The non-streaming body is built by
running the same encoder and keeping only its final response object, so a streamed answer
and a JSON answer to the same run are the same object.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_service.errors import ServiceError, UpstreamRateLimited
from agent_service.events import (
    Event,
    MessageFinished,
    ReasoningDelta,
    RunEnded,
    RunFailed,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolResult,
    Usage,
)
from agent_service.protocols.base import Frame, RequestContext, TraceReturn
from agent_service.protocols.common import (
    RunSummary,
    UsageTotals,
    client_tools_of,
    databricks_output,
    new_id,
    run_options,
)
from agent_service.protocols.registry import TaskName
from agent_service.protocols.responses_input import (
    allowed_tools,
    chat_tool_choice,
    chat_tools,
    messages_from_input,
    model_params,
)
from agent_service.run import AgentRun

# Response fields echoed from the request, with OpenAI's defaults when absent.
_ECHOED_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "temperature": 1.0,
    "top_p": 1.0,
    "tool_choice": "auto",
    "max_output_tokens": None,
    "previous_response_id": None,
    "text": {"format": {"type": "text"}},
    "truncation": "disabled",
    "user": None,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "reasoning": None,
    "max_tool_calls": None,
    "service_tier": "default",
    "safety_identifier": None,
    "prompt_cache_key": None,
}
# Function tools echoed back need the fields the OpenAI and MLflow types require.
_EMPTY_PARAMETERS = {"type": "object", "properties": {}}


class ResponsesTask:
    name: TaskName = "agent/v1/responses"

    def exchange(self, body: Mapping[str, Any], context: RequestContext) -> ResponsesExchange:
        """On the OpenAI routes the agent's own tool calls are `mcp_call` items: OpenAI's
        item for a tool the server ran (a `function_call` item is always the client's to
        run, and `function_call_output` is no output item there). /invocations keeps
        MLflow's ResponsesAgent convention: `function_call` + `function_call_output`."""
        tools = allowed_tools(chat_tools(body.get("tools")), body.get("tool_choice"))
        tool_params: dict[str, Any] = {}
        if tools and body.get("tool_choice") is not None:
            tool_params["tool_choice"] = chat_tool_choice(body["tool_choice"])
        if tools and body.get("parallel_tool_calls") is not None:
            tool_params["parallel_tool_calls"] = body["parallel_tool_calls"]
        options = run_options(
            body,
            context,
            model_params=model_params(body),
            client_tools=client_tools_of(tools),
            tool_params=tool_params,
        )
        echoed = {key: body.get(key, default) for key, default in _ECHOED_DEFAULTS.items()}
        for key, default in _ECHOED_DEFAULTS.items():
            if echoed[key] is None:
                echoed[key] = default
        if echoed["service_tier"] == "auto":
            echoed["service_tier"] = "default"  # the tier used: there is only one here
        echoed["tools"] = [_echo_tool(tool) for tool in body.get("tools") or ()]
        echoed["store"] = body.get("store") is not False
        echoed["background"] = bool(body.get("background"))
        conversation = body.get("conversation")
        if isinstance(conversation, str):
            conversation = {"id": conversation}
        echoed["conversation"] = {"id": conversation["id"]} if conversation else None
        return ResponsesExchange(
            run=AgentRun(messages_from_input(body), options, context.wire_request(self.name, body)),
            response_id=f"resp_{new_id()}",
            created_at=int(time.time()),
            model=str(body.get("model") or context.agent_name),
            echoed=echoed,
            trace_return=context.trace_return,
            server_tools_as_mcp=context.openai_route,
            server_label=context.agent_name,
        )


def _echo_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return dict(tool)
    return {"parameters": _EMPTY_PARAMETERS, "strict": False, "description": None, **tool}


@dataclass(frozen=True, slots=True)
class ResponsesExchange:
    run: AgentRun
    response_id: str
    created_at: int
    model: str
    echoed: Mapping[str, Any]
    trace_return: TraceReturn
    # The agent's own tool calls as `mcp_call` items (the OpenAI routes), labelled so.
    server_tools_as_mcp: bool = False
    server_label: str = "agent"

    def encoder(self) -> ResponsesEventEncoder:
        return ResponsesEventEncoder(self)

    def reducer(self) -> ResponsesReducer:
        return ResponsesReducer(self)


@dataclass(slots=True)
class _OpenText:
    message_id: str
    item: dict[str, Any]
    output_index: int
    parts: list[str] = field(default_factory=list)


class ResponsesEventEncoder:
    """Events → `response.*` events with sequence numbers; keeps the response it describes."""

    def __init__(self, exchange: ResponsesExchange) -> None:
        self._exchange = exchange
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._text: _OpenText | None = None
        # The reasoning item being written (its summary text), before the message's text.
        self._reasoning: _OpenText | None = None
        # Function call and mcp_call items by call id, with their output index.
        self._calls: dict[str, tuple[dict[str, Any], int]] = {}
        self._summary = RunSummary()
        self._started = False
        self.final: dict[str, Any] | None = None

    def encode(self, event: Event) -> list[Frame]:
        self._summary.note(event)
        frames = self._opening()
        if isinstance(event, ReasoningDelta):
            return [*frames, *self._reasoning_delta(event)]
        if self._reasoning is not None:
            frames.extend(self._close_reasoning())
        if isinstance(event, TextDelta):
            frames.extend(self._text_delta(event))
        elif isinstance(event, ToolCallStarted):
            frames.extend(self._close_text())
            frames.extend(self._call_started(event))
        elif isinstance(event, ToolCallArgumentsDelta):
            item, index = self._calls[event.call_id]
            item["arguments"] += event.delta
            kind = _ARGUMENTS_EVENTS[item["type"]]
            frames.append(
                self._event(
                    f"{kind}.delta", item_id=item["id"], output_index=index, delta=event.delta
                )
            )
        elif isinstance(event, ToolCallFinished):
            frames.extend(self._call_finished(event))
        elif isinstance(event, MessageFinished):
            frames.extend(self._close_text())
        elif isinstance(event, ToolResult):
            frames.extend(self._tool_result(event))
        elif isinstance(event, RunEnded):
            frames.extend(self._close_text())
            frames.extend(self._close_unanswered_calls())
            frames.extend(self._completed())
        elif isinstance(event, RunFailed):
            frames.extend(self._failed(event.error))
        return frames

    def go_on_from(self, response: Mapping[str, Any], sequence: int) -> list[Frame]:
        """Continue a stored stream that stopped with its worker (a resumed background run):
        numbering goes on at `sequence`, the output the response had is kept, and its items
        that were still being written end `incomplete` (their step runs again and its output
        follows as new items)."""
        self._sequence = sequence
        # The opening events are stored with the first events of the run, or not at all.
        self._started = sequence > 0
        self._output = [dict(item) for item in response.get("output") or ()]
        # The tokens the model calls before the resume used count in the run's usage.
        usage = response.get("usage")
        if isinstance(usage, Mapping):
            self._summary.usage.add(
                Usage(
                    int(usage.get("input_tokens") or 0),
                    int(usage.get("output_tokens") or 0),
                    int(usage.get("total_tokens") or 0),
                )
            )
        frames = []
        for index, item in enumerate(self._output):
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
                frames.append(
                    self._event("response.output_item.done", output_index=index, item=_copy(item))
                )
        return frames

    # --- the items ---------------------------------------------------------------------

    def _text_delta(self, event: TextDelta) -> list[Frame]:
        frames: list[Frame] = []
        if self._text is None or self._text.message_id != event.message_id:
            frames.extend(self._close_text())
            frames.extend(self._open_text(event.message_id))
        text = self._text
        assert text is not None
        text.parts.append(event.text)
        frames.append(
            self._event(
                "response.output_text.delta",
                item_id=text.item["id"],
                output_index=text.output_index,
                content_index=0,
                delta=event.text,
                logprobs=[],
            )
        )
        return frames

    def _reasoning_delta(self, event: ReasoningDelta) -> list[Frame]:
        frames: list[Frame] = []
        if self._reasoning is None or self._reasoning.message_id != event.message_id:
            frames.extend(self._close_reasoning())
            frames.extend(self._close_text())
            item = {"id": f"rs_{event.message_id}", "type": "reasoning", "summary": []}
            index = len(self._output)
            self._output.append(item)
            self._reasoning = _OpenText(event.message_id, item, index)
            frames.append(
                self._event("response.output_item.added", output_index=index, item=_copy(item))
            )
            frames.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part=_summary_part(""),
                )
            )
        reasoning = self._reasoning
        assert reasoning is not None
        reasoning.parts.append(event.text)
        frames.append(
            self._event(
                "response.reasoning_summary_text.delta",
                item_id=reasoning.item["id"],
                output_index=reasoning.output_index,
                summary_index=0,
                delta=event.text,
            )
        )
        return frames

    def _close_reasoning(self) -> list[Frame]:
        reasoning = self._reasoning
        if reasoning is None:
            return []
        self._reasoning = None
        whole = "".join(reasoning.parts)
        reasoning.item["summary"] = [_summary_part(whole)]
        common = {
            "item_id": reasoning.item["id"],
            "output_index": reasoning.output_index,
            "summary_index": 0,
        }
        return [
            self._event("response.reasoning_summary_text.done", **common, text=whole),
            self._event(
                "response.reasoning_summary_part.done", **common, part=_summary_part(whole)
            ),
            self._event(
                "response.output_item.done",
                output_index=reasoning.output_index,
                item=_copy(reasoning.item),
            ),
        ]

    def _open_text(self, message_id: str) -> list[Frame]:
        item = {
            # Ids follow the events': two encoders of one run (the stream's, and the one that
            # stores the response) name every item alike.
            "id": f"msg_{message_id}",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        index = len(self._output)
        self._output.append(item)
        self._text = _OpenText(message_id, item, index)
        return [
            self._event("response.output_item.added", output_index=index, item=_copy(item)),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=_text_part(""),
            ),
        ]

    def _close_text(self) -> list[Frame]:
        text = self._text
        if text is None:
            return []
        self._text = None
        whole = "".join(text.parts)
        part = _text_part(whole)
        text.item["content"] = [part]
        text.item["status"] = "completed"
        common = {"item_id": text.item["id"], "output_index": text.output_index, "content_index": 0}
        return [
            self._event("response.output_text.done", **common, text=whole, logprobs=[]),
            self._event("response.content_part.done", **common, part=_copy(part)),
            self._event(
                "response.output_item.done", output_index=text.output_index, item=_copy(text.item)
            ),
        ]

    def _call_started(self, event: ToolCallStarted) -> list[Frame]:
        if self._mcp(event.client):
            return self._mcp_started(
                f"mcp_{event.message_id}_{event.index}", event.call_id, event.name
            )
        item = {
            "id": f"fc_{event.message_id}_{event.index}",
            "type": "function_call",
            "call_id": event.call_id,
            "name": event.name,
            "arguments": "",
            "status": "in_progress",
        }
        index = len(self._output)
        self._output.append(item)
        self._calls[event.call_id] = (item, index)
        return [self._event("response.output_item.added", output_index=index, item=_copy(item))]

    def _mcp(self, client: bool) -> bool:
        return self._exchange.server_tools_as_mcp and not client

    def _mcp_started(self, item_id: str, call_id: str, name: str) -> list[Frame]:
        item = {
            "id": item_id,
            "type": "mcp_call",
            "server_label": self._exchange.server_label,
            "name": name,
            "arguments": "",
            "output": None,
            "error": None,
            "status": "in_progress",
        }
        index = len(self._output)
        self._output.append(item)
        self._calls[call_id] = (item, index)
        return [
            self._event("response.output_item.added", output_index=index, item=_copy(item)),
            self._event("response.mcp_call.in_progress", item_id=item_id, output_index=index),
        ]

    def _call_finished(self, event: ToolCallFinished) -> list[Frame]:
        item, index = self._calls[event.call_id]
        item["arguments"] = event.arguments
        if item["type"] == "mcp_call":
            # The call is made now; the item is done when the tool's result is in.
            return [
                self._event(
                    "response.mcp_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=event.arguments,
                )
            ]
        item["status"] = "completed"
        return [
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=event.name,
                arguments=event.arguments,
            ),
            self._event("response.output_item.done", output_index=index, item=_copy(item)),
        ]

    def _tool_result(self, event: ToolResult) -> list[Frame]:
        if self._exchange.server_tools_as_mcp:
            return self._mcp_result(event)
        item = {
            "id": f"fco_{event.message_id}",
            "type": "function_call_output",
            "call_id": event.call_id,
            "output": event.output,
            "status": "completed",
        }
        index = len(self._output)
        self._output.append(item)
        return [
            self._event("response.output_item.added", output_index=index, item=_copy(item)),
            self._event("response.output_item.done", output_index=index, item=_copy(item)),
        ]

    def _mcp_result(self, event: ToolResult) -> list[Frame]:
        frames: list[Frame] = []
        if event.call_id not in self._calls:
            # A result whose call was never shown (an agent that reports only results).
            frames.extend(self._mcp_started(f"mcp_{event.message_id}", event.call_id, event.name))
        item, index = self._calls[event.call_id]
        item["output"] = event.output
        item["status"] = "completed"
        return [
            *frames,
            self._event("response.mcp_call.completed", item_id=item["id"], output_index=index),
            self._event("response.output_item.done", output_index=index, item=_copy(item)),
        ]

    def _close_unanswered_calls(self) -> list[Frame]:
        """Agent tool calls the run never ran (it stopped for a client tool called next to
        them): done, as incomplete, so every item added is done."""
        frames: list[Frame] = []
        for item, index in self._calls.values():
            if item["type"] == "mcp_call" and item["status"] == "in_progress":
                item["status"] = "incomplete"
                frames.append(
                    self._event("response.output_item.done", output_index=index, item=_copy(item))
                )
        return frames

    # --- the response ------------------------------------------------------------------

    def _opening(self) -> list[Frame]:
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self._response("in_progress", output=False)),
            self._event(
                "response.in_progress", response=self._response("in_progress", output=False)
            ),
        ]

    def _completed(self) -> list[Frame]:
        if self._summary.last_finish == "length":
            reason = self._summary.cut_short or "max_output_tokens"
            self.final = self._finished("incomplete", reason=reason)
            return [self._terminal("response.incomplete")]
        self.final = self._finished("completed")
        return [self._terminal("response.completed")]

    def _failed(self, error: ServiceError) -> list[Frame]:
        for item in self._output:
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
        request_id = self._exchange.run.options.request_id
        message = error.to_envelope(request_id)["error"]["message"]
        code = "rate_limit_exceeded" if isinstance(error, UpstreamRateLimited) else "server_error"
        self.final = self._finished("failed", error={"code": code, "message": message})
        # The OpenAI SDK reads the flat fields; the Open Responses specification nests them.
        details = {"code": error.code, "message": message, "param": error.param}
        return [
            self._event("error", **details, error={"type": error.error_type, **details}),
            self._terminal("response.failed"),
        ]

    def cancelled(self) -> list[Frame]:
        """A background run stopped by a cancel: the response ends `cancelled` with what it
        had, and the stream with an `error` event saying so (OpenAI's event list has no
        `response.cancelled`; the stream still ends with a terminal event)."""
        frames = self._close_text()
        for item in self._output:
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
        self.final = self._finished("cancelled")
        message = "The response was cancelled."
        return [
            *frames,
            self._event("error", code="response_cancelled", message=message, param=None),
        ]

    def _terminal(self, kind: str) -> Frame:
        """The last event, carrying the final response — and, when the client asked for it
        (`x-mlflow-return-trace-id`), the trace id at its top level: where MLflow's agent
        server puts it (in a frame of its own, which typed clients cannot parse) and where
        the Databricks chatbot reads it from a stream for its feedback buttons."""
        trace_id = self._exchange.trace_return.trace_id
        extra = {"trace_id": trace_id} if trace_id is not None else {}
        return self._event(kind, response=self.final, **extra)

    def _finished(self, status: str, **details: Any) -> dict[str, Any]:
        """The final response, with the trace id (metadata) and trace when asked for."""
        response = self._response(status, **details)
        trace_return = self._exchange.trace_return
        if trace_return.trace_id is not None:
            response["metadata"] = {**response["metadata"], "trace_id": trace_return.trace_id}
        response.update(databricks_output(trace_return))
        return response

    def snapshot(self) -> dict[str, Any]:
        """The response as it stands: the final one once the run ended, else in progress."""
        return self.final if self.final is not None else self._response("in_progress")

    def _response(
        self,
        status: str,
        *,
        output: bool = True,
        reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        exchange = self._exchange
        if output and self._text is not None:
            # The text item still being written, with what it has so far.
            self._text.item["content"] = [_text_part("".join(self._text.parts))]
        if output and self._reasoning is not None:
            self._reasoning.item["summary"] = [_summary_part("".join(self._reasoning.parts))]
        response: dict[str, Any] = {
            "id": exchange.response_id,
            "object": "response",
            "created_at": exchange.created_at,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": reason} if reason else None,
            "completed_at": int(time.time()) if status == "completed" else None,
            "model": exchange.model,
            "output": [_copy(item) for item in self._output] if output else [],
            **exchange.echoed,
            # Required by the Open Responses specification: null until the model reports it.
            "usage": _usage(self._summary.usage)
            if output and self._summary.usage.reported
            else None,
        }
        if output and self._summary.custom_outputs is not None:
            response["custom_outputs"] = self._summary.custom_outputs
        return response

    def _event(self, kind: str, **fields: Any) -> Frame:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return Frame(payload, event=kind)


_ARGUMENTS_EVENTS = {
    "function_call": "response.function_call_arguments",
    "mcp_call": "response.mcp_call_arguments",
}


class ResponsesReducer:
    """Events → one response object: the encoder's own final response, frames discarded."""

    def __init__(self, exchange: ResponsesExchange) -> None:
        self._encoder = ResponsesEventEncoder(exchange)

    def add(self, event: Event) -> None:
        self._encoder.encode(event)

    def go_on_from(self, response: Mapping[str, Any], sequence: int) -> None:
        self._encoder.go_on_from(response, sequence)

    def result(self) -> dict[str, Any]:
        return self._encoder.snapshot()


def abandoned(
    response: Mapping[str, Any], sequence: int, message: str
) -> tuple[dict[str, Any], list[Frame]]:
    """The ending of a run whose worker died: the response as it was last stored, `failed`
    with `message`, and the terminal events a live stream of it would have ended with."""
    output = [
        {**item, "status": "incomplete"} if item.get("status") == "in_progress" else dict(item)
        for item in response.get("output") or ()
    ]
    final = {
        **response,
        "status": "failed",
        "output": output,
        "error": {"code": "server_error", "message": message},
    }
    error = {"type": "error", "sequence_number": sequence, "code": "worker_lost"}
    error.update(message=message, param=None)
    failed = {"type": "response.failed", "sequence_number": sequence + 1, "response": final}
    return final, [Frame(error, "error"), Frame(failed, "response.failed")]


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def _usage(totals: UsageTotals) -> dict[str, Any]:
    return {
        "input_tokens": totals.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": totals.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": totals.total_tokens,
    }


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    """A snapshot of an item as it is now (items keep changing until they are done)."""
    copied = dict(item)
    for key in ("content", "summary"):
        if key in copied:
            copied[key] = [dict(part) for part in copied[key]]
    return copied
