"""The built-in offline chat model: deterministic, streams token by token, needs no network.

It answers plainly that it is the offline model and how to configure a real one, echoing the
last user message so a developer can see the round trip. It honours `stop` and the token
limits, reports token usage, and can be scripted to call tools (see `ScriptedTurn`), which
is how the tool paths are exercised without a real model.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

OFFLINE_MODEL_NAME = "offline"

OFFLINE_NOTICE = (
    "This is the offline model of agent-service: no model endpoint is configured, so this "
    "answer is canned. To use a real model, set DATABRICKS_SERVING_ENDPOINT (with Databricks "
    "credentials) or OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL, then restart the server."
)

# A token is a run of non-space characters with the whitespace before it, like " world":
# joining the tokens gives back the text exactly.
_TOKEN = re.compile(r"\s*\S+|\s+$")
# How much of the user's message the answer quotes back.
_ECHO_LIMIT = 200


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    """One model reply: text and/or tool calls. Without text and without tool calls it is
    the usual offline answer."""

    text: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScriptedTurn:
        calls = tuple(
            ScriptedToolCall(name=str(call["name"]), arguments=dict(call.get("arguments", {})))
            for call in data.get("tool_calls", ())
        )
        text = data.get("text")
        return cls(text=None if text is None else str(text), tool_calls=calls)


@dataclass(frozen=True, slots=True)
class _Reply:
    text: str
    tool_calls: tuple[ScriptedToolCall, ...]
    finish_reason: str
    input_tokens: int

    @property
    def tokens(self) -> list[str]:
        return tokenize(self.text)

    def usage(self) -> UsageMetadata:
        output = len(self.tokens) + sum(
            len(tokenize(orjson.dumps(call.arguments).decode())) for call in self.tool_calls
        )
        return UsageMetadata(
            input_tokens=self.input_tokens,
            output_tokens=output,
            total_tokens=self.input_tokens + output,
        )


class OfflineChatModel(BaseChatModel):
    """A deterministic stand-in for a chat model endpoint."""

    token_delay_s: float = 0.0
    # Scripted replies: the reply for a model call is chosen by how many assistant turns
    # already follow the last user message, so a conversation is deterministic and the model
    # holds no state between requests.
    script: tuple[ScriptedTurn, ...] = ()

    @property
    def _llm_type(self) -> str:
        return OFFLINE_MODEL_NAME

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        specs = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=specs, **kwargs)

    def _reply(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> _Reply:
        input_tokens = sum(_estimated_tokens(_text_of(message)) for message in messages)
        turn = self._scripted_turn(messages)
        calls = () if turn is None else turn.tool_calls
        if turn is not None and turn.text is not None:
            text = turn.text
        else:
            text = "" if calls else _default_answer(messages)
        finish_reason = "tool_calls" if calls else "stop"
        for marker in stop or ():
            if marker and marker in text:
                text, calls, finish_reason = text[: text.index(marker)], (), "stop"
        limit = _token_limit(kwargs)
        tokens = tokenize(text)
        if limit is not None and len(tokens) > limit:
            text, calls, finish_reason = "".join(tokens[:limit]), (), "length"
        return _Reply(text, calls, finish_reason, input_tokens)

    def _scripted_turn(self, messages: list[BaseMessage]) -> ScriptedTurn | None:
        if not self.script:
            return None
        step = 0
        for message in reversed(messages):
            if isinstance(message, HumanMessage):
                break
            if isinstance(message, AIMessage):
                step += 1
        return self.script[min(step, len(self.script) - 1)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages, stop, **kwargs)
        return _result(reply)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages, stop, **kwargs)
        if self.token_delay_s:
            # The same wall time a streamed answer takes, so both paths behave alike.
            await asyncio.sleep(self.token_delay_s * max(len(reply.tokens), 1))
        return _result(reply)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from _chunks(self._reply(messages, stop, **kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in _chunks(self._reply(messages, stop, **kwargs)):
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            yield chunk


def _result(reply: _Reply) -> ChatResult:
    message = AIMessage(
        content=reply.text,
        tool_calls=[
            ToolCall(name=call.name, args=call.arguments, id=call_id, type="tool_call")
            for call, call_id in zip(reply.tool_calls, _call_ids(reply), strict=True)
        ],
        usage_metadata=reply.usage(),
        response_metadata={"finish_reason": reply.finish_reason, "model_name": OFFLINE_MODEL_NAME},
    )
    return ChatResult(generations=[ChatGeneration(message=message)])


def _chunks(reply: _Reply) -> Iterator[ChatGenerationChunk]:
    for token in reply.tokens:
        yield ChatGenerationChunk(message=AIMessageChunk(content=token))
    for index, (call, call_id) in enumerate(zip(reply.tool_calls, _call_ids(reply), strict=True)):
        arguments = orjson.dumps(call.arguments).decode()
        # Like a real endpoint: the first fragment names the call, later ones carry arguments.
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=[ToolCallChunk(name=call.name, args="", id=call_id, index=index)],
            )
        )
        for piece in _split_arguments(arguments):
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[ToolCallChunk(name=None, args=piece, id=None, index=index)],
                )
            )
    yield ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            usage_metadata=reply.usage(),
            response_metadata={
                "finish_reason": reply.finish_reason,
                "model_name": OFFLINE_MODEL_NAME,
            },
            chunk_position="last",
        )
    )


def _call_ids(reply: _Reply) -> list[str]:
    return [f"call_{uuid.uuid4().hex[:24]}" for _ in reply.tool_calls]


# Argument JSON is streamed in pieces of this many characters, like a real endpoint would.
_ARGUMENT_PIECE = 8


def _split_arguments(arguments: str) -> list[str]:
    return [
        arguments[start : start + _ARGUMENT_PIECE]
        for start in range(0, len(arguments), _ARGUMENT_PIECE)
    ]


def _token_limit(kwargs: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = kwargs.get(key)
        if isinstance(value, int):
            return value
    return None


def _text_of(message: BaseMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = []
    for part in message.content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return " ".join(parts)


def _default_answer(messages: list[BaseMessage]) -> str:
    said = next((_text_of(m) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    echo = f' You said: "{_clip(said)}".' if said else ""
    results = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, ToolMessage):
            results.append(f"{message.name or 'tool'} → {_clip(_text_of(message))}")
    tools = f" Tool results: {'; '.join(reversed(results))}." if results else ""
    return OFFLINE_NOTICE + echo + tools


def _estimated_tokens(text: str) -> int:
    """The prompt's words, as the offline model counts tokens; past a quarter of a megabyte,
    about four characters a token (OpenAI's rule of thumb): counting the words of a long
    prompt would hold the event loop for a second per ten megabytes."""
    if len(text) > _COUNTED_CHARACTERS:
        return (len(text) + 3) // 4
    return len(tokenize(text))


# Prompts up to this many characters have their words counted exactly (a few milliseconds).
_COUNTED_CHARACTERS = 256 * 1024


def _clip(text: str) -> str:
    # Only the beginning is echoed: never split a whole (possibly huge) message.
    text = " ".join(text[: _ECHO_LIMIT * 4].split())
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 1] + "…"
