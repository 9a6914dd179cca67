"""What the client cases of every language expect, and an HTTP client that records what a
Python client sent and was answered (its users read the trace id from a response header)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson

from agent_service.models.offline import OFFLINE_NOTICE
from tests.fakes.openai_server import Behaviour, FakeOpenAI

TRACE_ID_HEADER = "x-mlflow-trace-id"
# The answer of the fake upstream (tests/fakes/openai_server.py) with its default behaviour.
FAKE_ANSWER = "Hello from the fake model."
# What the client's own tool says (CLIENT_TOOL_SCRIPT's model then answers "Sunny in Paris.").
WEATHER_REPORT = "Sunny and 24 degrees in Paris."


# The model endpoint fails after the role chunk and two tokens ("Hello from"): it drops the
# connection, or ends the body cleanly with neither a finish_reason nor [DONE] (a proxy that
# closed it). Either way the client must get those tokens, then an error with our message.
MID_STREAM_FAILURES = {
    "dropped": (Behaviour(drop_after_chunks=3), "The model endpoint failed"),
    "cut-off": (Behaviour(cut_after_chunks=3), "answer was cut off before it finished"),
}


def offline_answer(said: str) -> str:
    return f'{OFFLINE_NOTICE} You said: "{said}".'


def said_to_model(fake: FakeOpenAI) -> list[tuple[str, str]]:
    """(role, text) of each message of the last model call."""
    said = []
    for message in fake.requests[-1].body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        said.append((message["role"], content or ""))
    return said


@dataclass
class Wire:
    """What went over the client's HTTP connection: each request body, each trace id."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)

    async def _request(self, request: httpx2.Request) -> None:
        if request.content:
            self.sent.append(orjson.loads(request.content))

    async def _response(self, response: httpx2.Response) -> None:
        trace_id = response.headers.get(TRACE_ID_HEADER)
        if trace_id is not None:
            self.trace_ids.append(trace_id)


@asynccontextmanager
async def recorded_http() -> AsyncIterator[tuple[httpx2.AsyncClient, Wire]]:
    """An HTTP client for the client library under test (one per test: no pooled connection
    outlives its event loop), and what it records. It is the OpenAI SDK's own HTTP library
    (httpx2, which the SDK depends on), as a user passes it in `http_client`."""
    wire = Wire()
    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [wire._request],
        "response": [wire._response],
    }
    async with httpx2.AsyncClient(event_hooks=hooks, timeout=60) as http:
        yield http, wire
