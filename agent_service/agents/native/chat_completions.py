"""agent/v1/chat as an agent writes it (OpenAI Chat Completions, MLflow's ChatModel types):
its chunks or completion read into events, and the request it expects built from a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast, get_args

from langchain_core.messages import convert_to_openai_messages

from agent_service.agents.native.answer_builder import AnswerBuilder
from agent_service.agents.native.common import text_of, tool_arguments
from agent_service.events import Event, FinishReason
from agent_service.run import AgentRun

_FINISH_REASONS = frozenset(get_args(FinishReason))
# One completion is one assistant message, whatever ids its chunks carry.
_MESSAGE = "completion"


class ChatCompletionsReader:
    """`chat.completion.chunk`s (or one `chat.completion`) of a Chat Completions agent →
    events."""

    def __init__(self, client_tools: frozenset[str]) -> None:
        self._answer = AnswerBuilder(client_tools)
        self._finish: FinishReason | None = None
        # Streamed calls by their index in the message, as chunks number them.
        self._calls: dict[int, str] = {}

    def read(self, chunk: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        for choice in (chunk.get("choices") or ())[:1]:
            delta = choice.get("delta") or {}
            if content := text_of(delta.get("content")):
                events.extend(self._answer.text(_MESSAGE, content))
            for fragment in delta.get("tool_calls") or ():
                events.extend(self._fragment(fragment))
            self._note_finish(choice.get("finish_reason"))
        events.extend(self._extras(chunk))
        return events

    def read_whole(self, completion: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        for choice in (completion.get("choices") or ())[:1]:
            message = choice.get("message") or {}
            events.extend(self._answer.text(_MESSAGE, text_of(message.get("content"))))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                events.extend(
                    self._answer.whole_call(
                        _MESSAGE,
                        str(call.get("id") or ""),
                        str(function.get("name") or ""),
                        tool_arguments(function.get("arguments") or ""),
                    )
                )
            self._note_finish(choice.get("finish_reason"))
        events.extend(self._extras(completion))
        events.extend(self.close())
        return events

    def close(self) -> list[Event]:
        return self._answer.finish(self._finish)

    def _fragment(self, fragment: Mapping[str, Any]) -> list[Event]:
        index = fragment.get("index")
        index = len(self._calls) if not isinstance(index, int) else index
        function = fragment.get("function") or {}
        events: list[Event] = []
        if index not in self._calls:
            call_id = str(fragment.get("id") or f"call_{index}")
            self._calls[index] = call_id
            events.extend(self._answer.call_started(_MESSAGE, call_id, function.get("name") or ""))
        if arguments := function.get("arguments"):
            events.extend(self._answer.call_arguments(self._calls[index], str(arguments)))
        return events

    def _note_finish(self, reason: object) -> None:
        if reason in _FINISH_REASONS:
            self._finish = cast(FinishReason, reason)

    def _extras(self, body: Mapping[str, Any]) -> list[Event]:
        return self._answer.chat_usage_and_outputs(body)


def request_from_run(run: AgentRun) -> dict[str, Any]:
    """The Chat Completions body for a run that arrived in another protocol."""
    body: dict[str, Any] = {
        "messages": convert_to_openai_messages(list(run.messages)),
        **run.options.model_params,
    }
    options = run.options
    if options.client_tools:
        body["tools"] = [dict(tool) for tool in options.client_tools]
        body.update(options.tool_params)
    if options.custom_inputs:
        body["custom_inputs"] = dict(options.custom_inputs)
    return body
