"""`@invoke` / `@stream` functions behind the agent interface (the authoring API of MLflow's
AgentServer and of the Databricks agent templates; `agent_service/agent_server.py`).

- The function gets the request in its own protocol: the body as the client sent it (without
  `stream`) when it arrived in that protocol, else the same conversation rebuilt from the
  run (`native.*.request_from_run`); a dict, or the typed request when the authoring API
  gives one (`request_type`, e.g. MLflow's `ResponsesAgentRequest`).
- Async functions and async generators run on the event loop; plain functions and
  generators run in a thread pool (`_THREADS` threads), one step at a time, never on the
  loop. Both see the request's context: its headers (`get_request_headers()`) and its
  trace (spans they open nest under the request's root span).
- What they return or yield is read by the protocol's reader into events, so a handler that
  yields only `response.output_item.done` items, or MLflow's `create_text_delta` events
  without sequence numbers, still gives every client the protocol's complete sequence.
- Only `@stream`: a JSON request folds the stream. Only `@invoke`: a stream request gets the
  whole answer as one sequence.
- An exception carrying `status_code` (FastAPI's and aiohttp's HTTP exceptions) becomes
  that status; any other failure is an agent failure (a generic 500 with the request id).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agent_service.agents.base import AgentLoadError
from agent_service.agents.native import NATIVE
from agent_service.agents.native.common import AgentOutputError, as_plain
from agent_service.errors import InvalidBody, ServiceError, agent_http_error
from agent_service.events import Event, RunEnded
from agent_service.models.upstream import translate
from agent_service.run import AgentRun

Handler = Callable[[Any], Any]
RequestType = Callable[[dict[str, Any]], Any]

# The headers of the request being answered: `get_request_headers()` reads them.
REQUEST_HEADERS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "agent_service_request_headers", default=MappingProxyType({})
)


@dataclass(slots=True)
class Handlers:
    """The registered functions: at most one of each (registering twice is an error)."""

    invoke: Handler | None = None
    stream: Handler | None = None

    def register(self, kind: str, function: Handler) -> None:
        if getattr(self, kind) is not None:
            raise ValueError(f"{kind} decorator can only be used once")
        setattr(self, kind, function)

    def __bool__(self) -> bool:
        return self.invoke is not None or self.stream is not None


# What the decorators of `agent_service.agent_server` register: one set per process, as in
# MLflow's API (a module of @invoke/@stream functions registers them when it is imported).
REGISTERED = Handlers()
# Per-worker start-up hooks (`@agent_server.startup()`): async functions, or async
# generators whose code after `yield` runs when the worker stops.
STARTUP_HOOKS: list[Callable[[], Any]] = []


class FunctionAgent:
    def __init__(
        self,
        task: str,
        handlers: Handlers,
        *,
        request_type: RequestType | None = None,
        kind: str = "@invoke/@stream functions",
    ) -> None:
        if not handlers:
            raise AgentLoadError(
                "no @invoke or @stream function is registered: decorate your agent's "
                "functions, and import the module that defines them before the server starts"
            )
        self.task = task
        self.kind = f"{kind} ({task})"
        self._native = NATIVE[task]
        self._handlers = handlers
        self._request_type = request_type

    async def invoke(self, run: AgentRun) -> list[Event]:
        function = self._handlers.invoke
        if function is None:
            return [event async for event in self.stream(run)]
        request = self._request(run)
        token = REQUEST_HEADERS.set(run.request.headers)
        try:
            result = await _returned(function, request)
            reader = self._native.reader(run.options.client_tool_names)
            events = reader.read_whole(as_plain(result, "answer"))
        except Exception as exc:
            raise agent_failure(exc) from exc
        finally:
            _reset(token)
        events.append(RunEnded())
        return events

    async def stream(self, run: AgentRun) -> AsyncIterator[Event]:
        function = self._handlers.stream
        if function is None:
            for event in await self.invoke(run):
                yield event
            return
        request = self._request(run)
        reader = self._native.reader(run.options.client_tool_names)
        token = REQUEST_HEADERS.set(run.request.headers)
        try:
            async with aclosing(_yielded(function, request)) as items:
                async for item in items:
                    for event in reader.read(as_plain(item, "stream item")):
                        yield event
            closing = reader.close()
        except Exception as exc:
            raise agent_failure(exc) from exc
        finally:
            _reset(token)
        for event in closing:
            yield event
        yield RunEnded()

    def _request(self, run: AgentRun) -> Any:
        if run.request.task == self.task:
            body = run.request.agent_body()
        else:
            body = self._native.request_from_run(run)
        if self.task == "agent/v1/responses" and isinstance(body.get("input"), str):
            # OpenAI accepts a plain string; MLflow's types and handlers expect items.
            body["input"] = [{"role": "user", "content": body["input"]}]
        if self._request_type is None:
            return body
        try:
            return self._request_type(body)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise _invalid(exc) from None


async def _returned(function: Handler, request: Any) -> Any:
    """What `function(request)` returns, sync functions run in a thread."""
    if inspect.iscoroutinefunction(function):
        return await function(request)
    result = await _in_thread(function, request)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _yielded(function: Handler, request: Any) -> AsyncGenerator[Any, None]:
    """What `function(request)` yields, sync generators stepped in threads."""
    if inspect.isasyncgenfunction(function) or inspect.isgeneratorfunction(function):
        produced = function(request)  # runs nothing until it is iterated
    else:
        produced = await _returned(function, request)
    if hasattr(produced, "__aiter__"):
        try:
            async for item in produced:
                yield item
        finally:
            if (aclose := getattr(produced, "aclose", None)) is not None:
                await aclose()
    elif isinstance(produced, Iterator):
        async for item in _stepped_in_threads(produced):
            yield item
    elif isinstance(produced, Iterable) and not isinstance(produced, str | bytes | Mapping):
        for item in produced:
            yield item
    else:
        raise AgentOutputError(
            f"the @stream function returned a {type(produced).__name__}; expected a generator"
        )


_END = object()
# Where the agents' sync code runs: a pool of our own, so that a step still running when its
# run was cancelled can be told apart from a finished one (an asyncio future wrapping it says
# "cancelled" at once). Threads start on first use, in the worker, never in gunicorn's master.
_THREADS = 32
_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _pool  # one pool per process, made on first use
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="agent")
    return _pool


async def _stepped_in_threads(items: Iterator[Any]) -> AsyncGenerator[Any, None]:
    """Each step of a sync generator in the thread pool, in this request's context."""
    context = contextvars.copy_context()
    step: Future[Any] | None = None

    def advance() -> Any:
        return next(items, _END)

    try:
        while True:
            step = _threads().submit(context.run, advance)
            item = await asyncio.wrap_future(step)
            if item is _END:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            if step is not None and not step.done():
                # Still running in its thread (the run was cancelled): close it after.
                step.add_done_callback(lambda _: _threads().submit(context.run, close))
            else:
                await asyncio.wrap_future(_threads().submit(context.run, close))


async def _in_thread(function: Handler, request: Any) -> Any:
    context = contextvars.copy_context()
    return await asyncio.wrap_future(_threads().submit(context.run, function, request))


def agent_failure(exc: Exception) -> ServiceError:
    """The error the client sees for `exc` raised by the agent's own code."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(exc, ServiceError) and not _upstream(exc):
        detail = getattr(exc, "detail", None)
        if not isinstance(detail, str):
            detail = getattr(exc, "text", None)
        return agent_http_error(status, detail if isinstance(detail, str) else None)
    return translate(exc)


def _upstream(exc: Exception) -> bool:
    """The OpenAI SDK's status errors carry `status_code` too; they are the model's."""
    return type(exc).__module__.startswith("openai")


def _invalid(exc: ValueError) -> InvalidBody:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        path = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        return InvalidBody(f"{path}: {first['msg']}", param=path)
    return InvalidBody("The request does not fit the agent's request type.")


def _reset(token: contextvars.Token[Mapping[str, str]]) -> None:
    # A generator closed from another context (garbage collection) cannot reset it; the
    # value then dies with that context.
    with contextlib.suppress(ValueError):
        REQUEST_HEADERS.reset(token)
