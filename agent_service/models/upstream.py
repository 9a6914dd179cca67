"""Failures of the model endpoint, translated into our error hierarchy.

langchain-openai raises the OpenAI SDK's exceptions; a connection that breaks in the middle
of a stream can also surface as the HTTP client's own transport error. An answer that is not
a chat completion at all (HTML from a proxy, an empty body, an error object with status 200,
bytes that are not Server-Sent Events, a chunk that is not JSON) makes the SDK and
langchain-openai raise whatever their parsing trips on — `EndpointChatModel` turns those into
`UpstreamError` where they happen, inside the model call. Anything else that escapes the
agent is a bug of ours and becomes a generic 500.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx2
import openai
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult, LLMResult
from langchain_openai.chat_models.base import BaseChatOpenAI

from agent_service.errors import (
    ServiceError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)

log = logging.getLogger(__name__)

# Databricks-hosted reasoning models stream `content` as a list of parts (reasoning, text);
# the OpenAI SDK's chunk type says string, so langchain-openai's `model_dump` of every such
# chunk warns, though the parts are kept. Not a problem to report once per process.
warnings.filterwarnings(
    "ignore", message="Pydantic serializer warnings", category=UserWarning, module="pydantic.main"
)

# Retry-After is either delta-seconds or an HTTP date; anything else is not passed on.
_RETRY_AFTER = re.compile(r"^(\d{1,6}|[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT)$")


def translate(exc: BaseException) -> ServiceError:
    """The error the client should see for `exc` raised while the agent ran."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return UpstreamTimeout()
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return UpstreamAuthError()
    if isinstance(exc, openai.RateLimitError):
        retry_after = exc.response.headers.get("retry-after", "").strip()
        headers = {"Retry-After": retry_after} if _RETRY_AFTER.match(retry_after) else {}
        return UpstreamRateLimited(headers=headers)
    if isinstance(exc, openai.APIStatusError):
        return UpstreamError(f"The model endpoint answered HTTP {exc.status_code}.")
    if isinstance(exc, openai.APIError | httpx2.TransportError):
        return UpstreamError()
    return ServiceError()


# What parsing an answer that is not a chat completion raises inside the OpenAI SDK and
# langchain-openai: JSONDecodeError and pydantic's ValidationError are ValueErrors; a text
# body where a completion object was expected surfaces as AttributeError or TypeError; an
# object without `choices` as KeyError or IndexError; an error object with status 200, and a
# stream with no chunk at all, as ValueError.
_UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, IndexError)


class UnreadableAnswer(UpstreamError):
    """The model endpoint answered 200 with something that is not a chat completion."""

    default_message = "The model endpoint sent an answer that is not a chat completion."


class CutOffAnswer(UpstreamError):
    """The model endpoint's stream ended cleanly after some chunks but before the answer did:
    no chunk carried a finish_reason (a proxy or HTTP/1.0 hop that closed the body; the
    `[DONE]` line is not visible through the OpenAI SDK, the missing finish_reason is)."""

    default_code = "upstream_cut_off"
    default_message = "The model endpoint's answer was cut off before it finished."


class _EndOfAnswer:
    """Follows the chunks of one streamed model call: did the answer say it was finished?"""

    def __init__(self) -> None:
        self.chunks = 0
        self.finished = False

    def note(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk:
        self.chunks += 1
        if (chunk.generation_info or {}).get("finish_reason"):
            self.finished = True
        return chunk

    def check(self) -> None:
        if self.chunks and not self.finished:
            log.warning(
                "The model endpoint's stream ended after %d chunks without a finish_reason: "
                "the answer was cut off and is reported as a failure",
                self.chunks,
            )
            raise CutOffAnswer()


REASONING = "reasoning_content"


def _keep_reasoning(message: BaseMessage, source: Mapping[str, Any] | None) -> None:
    """The model's reasoning, which langchain-openai drops, kept on the message as
    `additional_kwargs["reasoning_content"]`: OpenAI-compatible servers send it as
    `reasoning_content` (or `reasoning`), Databricks-hosted reasoning models as content parts
    of type "reasoning" whose summary holds `summary_text` parts (the text parts stay the
    message's content, as a string)."""
    if not source:
        return
    pieces: list[str] = []
    for key in (REASONING, "reasoning"):
        if isinstance(value := source.get(key), str) and value:
            pieces.append(value)
            break
    content = message.content
    if isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "reasoning" for part in content
    ):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif part.get("type") == "reasoning":
                pieces.extend(
                    str(summary.get("text") or "")
                    for summary in part.get("summary") or ()
                    if isinstance(summary, dict)
                )
            elif part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
        message.content = "".join(texts)
    if pieces:
        message.additional_kwargs[REASONING] = "".join(pieces)


class EndpointChatModel(BaseChatOpenAI):
    """langchain-openai's chat model, whose failures to read the endpoint's answer are
    `UpstreamError`s (502, or the terminal error event of a stream) rather than whatever
    the parser tripped on (a 500 with a traceback), and which keeps the model's reasoning."""

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        choices = chunk.get("choices") or ()
        if generation is not None and choices and isinstance(choices[0], dict):
            _keep_reasoning(generation.message, choices[0].get("delta"))
        return generation

    def _create_chat_result(
        self, response: Any, generation_info: dict[str, Any] | None = None
    ) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        raw = response if isinstance(response, dict) else response.model_dump()
        for generation, choice in zip(result.generations, raw.get("choices") or (), strict=False):
            if isinstance(choice, dict):
                _keep_reasoning(generation.message, choice.get("message"))
        return result

    def generate(self, *args: Any, **kwargs: Any) -> LLMResult:
        try:
            return super().generate(*args, **kwargs)
        except _UNREADABLE as exc:
            raise UnreadableAnswer() from exc

    async def agenerate(self, *args: Any, **kwargs: Any) -> LLMResult:
        try:
            return await super().agenerate(*args, **kwargs)
        except _UNREADABLE as exc:
            raise UnreadableAnswer() from exc

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return super()._generate(*args, **kwargs)
        except _UNREADABLE as exc:
            raise UnreadableAnswer() from exc

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        try:
            return await super()._agenerate(*args, **kwargs)
        except _UNREADABLE as exc:
            raise UnreadableAnswer() from exc

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        end = _EndOfAnswer()
        try:
            for chunk in super()._stream(*args, **kwargs):
                yield end.note(chunk)
        except _UNREADABLE as exc:
            raise UnreadableAnswer() from exc
        end.check()

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        end = _EndOfAnswer()
        try:
            async for chunk in super()._astream(*args, **kwargs):
                yield end.note(chunk)
        except _UNREADABLE as exc:
            raise UnreadableAnswer() from exc
        end.check()
