"""A fake OpenAI-compatible chat completions endpoint: a real HTTP server on 127.0.0.1.

The service's real client code (langchain-openai → the OpenAI SDK → HTTP) talks to it. Each
test sets what the next answers look like (`Behaviour`) and reads back what was asked
(`requests`), including whether the model call was abandoned mid-way (`cancelled`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Behaviour:
    """How the fake answers. Defaults: a two-token answer with usage, stream or not."""

    tokens: tuple[str, ...] = ("Hello", " from", " the", " fake", " model.")
    finish_reason: str = "stop"
    # A tool call to return instead of (or after) the text: (name, arguments JSON).
    tool_calls: tuple[tuple[str, str], ...] = ()
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None
    # Never answer (until the client gives up or goes away).
    hang: bool = False
    # Answer only once this event is set (a model call the test releases).
    hold: asyncio.Event | None = None
    # Streams: close the connection after this many chunks.
    drop_after_chunks: int | None = None
    # Streams: after this many chunks, end the body cleanly with neither a finish_reason nor
    # [DONE] (a proxy or HTTP/1.0 hop that closed the answer early).
    cut_after_chunks: int | None = None
    # Reasoning streamed before the text: as `reasoning_content` deltas (OpenAI-compatible
    # servers such as vLLM), or as Databricks' content parts of type "reasoning".
    reasoning: tuple[str, ...] = ()
    reasoning_style: str = "reasoning_content"
    # Seconds between streamed chunks.
    chunk_delay_s: float = 0.0
    # Seconds of silence before the first byte of the answer.
    think_s: float = 0.0
    # Streams: after this many chunks, wait until the test sets `FakeOpenAI.resume`.
    pause_after_chunks: int | None = None
    # Garbage instead of an answer: this exact body with status 200 (both for streams and
    # JSON requests), as a broken gateway or a misrouted proxy sends it.
    garbage: bytes | None = None
    garbage_type: str = "application/json"


def valid_chunk(text: str) -> bytes:
    """One well-formed stream chunk carrying `text`, framed as an SSE event."""
    chunk = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "fake",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeOpenAI:
    """The endpoint's state; `app()` builds the aiohttp application serving it."""

    def __init__(
        self, *, path_prefix: str = "/v1", check_auth: Callable[[str], bool] | None = None
    ) -> None:
        self.path_prefix = path_prefix
        self.behaviour = Behaviour()
        # Behaviours for the next calls, one each, in order; `behaviour` once they are used up
        # (a model that asks for a tool, then answers with what it said).
        self.script: list[Behaviour] = []
        self.requests: list[SeenRequest] = []
        self.received = asyncio.Event()
        self.cancelled = asyncio.Event()
        # Set by the fake when a stream reached `pause_after_chunks`; set by the test to go on.
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()
        self._check_auth = check_auth

    def app(self) -> web.Application:
        app = web.Application(handler_args={"handler_cancellation": True})
        app.router.add_post(f"{self.path_prefix}/chat/completions", self._chat_completions)
        return app

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(SeenRequest(request.path, dict(request.headers), body))
        self.received.set()
        if self._check_auth is not None and not self._check_auth(
            request.headers.get("Authorization", "")
        ):
            return _error(401, "invalid token", "invalid_api_key")
        behaviour = self.script.pop(0) if self.script else self.behaviour
        try:
            if behaviour.hang:
                await asyncio.Event().wait()
            if behaviour.hold is not None:
                await behaviour.hold.wait()
            if behaviour.think_s:
                await asyncio.sleep(behaviour.think_s)
            if behaviour.garbage is not None:
                return web.Response(
                    body=behaviour.garbage, headers={"Content-Type": behaviour.garbage_type}
                )
            if behaviour.status != 200:
                payload = behaviour.error_body or {
                    "error": {"message": "fake failure", "type": "server_error", "code": None}
                }
                return web.json_response(
                    payload, status=behaviour.status, headers=behaviour.headers
                )
            if body.get("stream"):
                return await self._stream(request, body, behaviour)
            return web.json_response(_completion(body, behaviour))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def _stream(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for count, chunk in enumerate(_chunks(body, behaviour)):
            if behaviour.drop_after_chunks is not None and count >= behaviour.drop_after_chunks:
                assert request.transport is not None
                request.transport.abort()
                return response
            if count == behaviour.cut_after_chunks:
                await response.write_eof()
                return response
            if count == behaviour.pause_after_chunks:
                self.paused.set()
                await self.resume.wait()
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if behaviour.chunk_delay_s:
                await asyncio.sleep(behaviour.chunk_delay_s)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status=status,
    )


def _usage(body: dict[str, Any], behaviour: Behaviour) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    completion = len(behaviour.tokens) + len(behaviour.tool_calls)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_calls(behaviour: Behaviour) -> list[dict[str, Any]]:
    # Unique per answer, as a real model's: a run that calls tools again and again must not
    # see the same call id twice.
    answer = uuid.uuid4().hex[:8]
    return [
        {
            "id": f"call_fake_{answer}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": args},
        }
        for i, (name, args) in enumerate(behaviour.tool_calls)
    ]


def _completion(body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(behaviour.tokens)}
    if behaviour.reasoning and behaviour.reasoning_style == "databricks":
        text = {"type": "text", "text": message["content"]}
        message["content"] = [_reasoning_part("".join(behaviour.reasoning)), text]
    elif behaviour.reasoning:
        message["reasoning_content"] = "".join(behaviour.reasoning)
    if behaviour.tool_calls:
        message["tool_calls"] = _tool_calls(behaviour)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": behaviour.finish_reason,
            }
        ],
        "usage": _usage(body, behaviour),
    }


def _reasoning_part(text: str) -> dict[str, Any]:
    """Reasoning as Databricks-hosted reasoning models send it: a content part."""
    return {"type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def _chunks(body: dict[str, Any], behaviour: Behaviour) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    chunks = [chunk({"role": "assistant", "content": ""})]
    for piece in behaviour.reasoning:
        if behaviour.reasoning_style == "databricks":
            chunks.append(chunk({"content": [_reasoning_part(piece)]}))
        else:
            chunks.append(chunk({"reasoning_content": piece}))
    chunks.extend(chunk({"content": token}) for token in behaviour.tokens)
    for index, call in enumerate(_tool_calls(behaviour)):
        first = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [first]}))
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": index, "function": {"arguments": call["function"]["arguments"]}}
                    ]
                }
            )
        )
    chunks.append(chunk({}, behaviour.finish_reason))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage_chunk = chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = _usage(body, behaviour)
        chunks.append(usage_chunk)
    return chunks
