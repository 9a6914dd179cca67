"""Thin handlers: read typed state, hand the validated body to the task, answer JSON or SSE."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from agent_service.events import Event
from agent_service.http.answer import answer, json_response
from agent_service.http.background import PreparedRun, start_background
from agent_service.http.middlewares import route_label
from agent_service.http.observer import RunObserver
from agent_service.http.routes import INVOCATIONS
from agent_service.http.turns import TurnPlan, end_turn, plan_turn, recorder_for, remembering
from agent_service.keys import (
    AGENT,
    BODY,
    BODY_BYTES,
    ENDPOINT,
    GATE,
    METRICS,
    OPENAPI,
    REQUEST_ID,
    SETTINGS,
    STARTED,
    STATE,
    TRACE_ID,
    USER_TOKEN,
)
from agent_service.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from agent_service.observability.tracing import RequestFacts, RequestTrace
from agent_service.protocols.base import Exchange, RequestContext, Task, TraceReturn

RETURN_TRACE_ID_HEADER = "x-mlflow-return-trace-id"


async def invoke_agent(request: web.Request) -> web.StreamResponse:
    """Every agent route: the conversation state the request names is resolved (a stateless
    request passes through untouched), the protocol prepares the run, `answer` runs it — or,
    for `background: true`, a task of the worker's runs it without the connection."""
    if request[BODY].get("background") is True:
        return await start_background(request, prepare_run)
    plan = await plan_turn(request, request[ENDPOINT].spec.task, request[BODY])
    if plan.stateless:
        return await _answer(request, plan)
    try:
        return await _answer(request, plan)
    finally:
        await end_turn(request, plan)


async def _answer(request: web.Request, plan: TurnPlan) -> web.StreamResponse:
    prepared = await prepare_run(request, plan)
    exchange = prepared.exchange

    def remember(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        return remembering(request, plan, exchange, events)

    streamed = plan.body.get("stream") is True
    return await answer(
        request,
        prepared.agent,
        exchange,
        prepared.observer,
        streamed=streamed,
        around=None if plan.stateless else remember,
        recorder=recorder_for(request, plan, exchange) if streamed else None,
    )


async def prepare_run(request: web.Request, plan: TurnPlan) -> PreparedRun:
    """The agent, the protocol's exchange for the request and the run's observer (its
    trace started)."""
    settings = request.app[SETTINGS]
    endpoint = request[ENDPOINT]
    body = plan.body
    agent = request.app[AGENT].require_agent()
    trace = _start_trace(request, endpoint.task.name, body)
    if trace is not None:
        request[TRACE_ID] = trace.trace_id
    trace_return = _trace_return(request, body, trace)
    context = RequestContext(
        request[REQUEST_ID],
        settings.agent_name,
        callbacks=(trace.recorder,) if trace else (),
        trace_return=trace_return,
        user_token=request.get(USER_TOKEN),
        headers=request.headers,
        thread=plan.thread,
        openai_route=request.path != INVOCATIONS,
    )
    exchange = await _prepared(endpoint.task, body, context, request[BODY_BYTES])
    observer = RunObserver(
        trace=trace,
        exchange=exchange,
        trace_return=trace_return,
        metrics=request.app[METRICS],
        route=route_label(request),
        started=request[STARTED],
    )
    return PreparedRun(agent, exchange, observer)


# Bodies larger than this are turned into the agent's input in a thread: converting 2,048
# messages into LangChain's objects takes tens of milliseconds of Python; in a thread the
# event loop still gets its turn every few milliseconds (the interpreter's switch interval).
_CONVERT_OFF_THE_LOOP_BYTES = 64 * 1024


async def _prepared(
    task: Task, body: dict[str, Any], context: RequestContext, size: int
) -> Exchange:
    if size <= _CONVERT_OFF_THE_LOOP_BYTES:
        return task.exchange(body, context)
    return await asyncio.to_thread(task.exchange, body, context)


def _start_trace(request: web.Request, task: str, body: dict[str, Any]) -> RequestTrace | None:
    agent = request.app[AGENT]
    context = body.get("context") or {}
    facts = RequestFacts(
        task=task,
        request_id=request[REQUEST_ID],
        backend_kind=agent.backend_kind,
        backend_endpoint=agent.backend_endpoint,
        session_id=context.get("conversation_id"),
        # MLflow's context first; behind Databricks Apps, the user the platform signed in.
        user=context.get("user_id")
        or request.headers.get("X-Forwarded-Email")
        or request.headers.get("X-Forwarded-User"),
    )
    return agent.tracer.start_request(facts, body)


def _trace_return(
    request: web.Request, body: dict[str, Any], trace: RequestTrace | None
) -> TraceReturn:
    if trace is None:
        return TraceReturn()
    wants_id = request.headers.get(RETURN_TRACE_ID_HEADER, "").lower() == "true"
    options = body.get("databricks_options") or {}
    return TraceReturn(
        trace_id=trace.trace_id if wants_id else None,
        wants_trace=bool(options.get("return_trace")),
    )


async def health(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP. Says nothing about the model endpoint. The worker's
    pid tells apart the workers behind one port."""
    return json_response({"status": "ok", "pid": os.getpid()})


async def ready(request: web.Request) -> web.Response:
    """Readiness: the agent is loaded and the worker is not draining (503 after SIGTERM)."""
    runtime = request.app[AGENT]
    gate = request.app[GATE]
    if runtime.agent is None or gate.draining:
        status = "draining" if gate.draining else "starting"
        return json_response({"status": status, "pid": os.getpid()}, status=503)
    return json_response({"status": "ready", "pid": os.getpid(), "in_flight": gate.in_flight})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": METRICS_CONTENT_TYPE}
    )


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])


async def agent_info(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    agent = request.app[AGENT]
    return json_response(
        {
            "name": settings.agent_name,
            "use_case": "agent",
            "agent_api": settings.task,
            "task": settings.task,
            "version": agent.version,
            "mlflow_version": agent.mlflow_version,
            "model": {"backend": agent.backend_kind, "endpoint": agent.backend_endpoint},
            "tracing": agent.tracer.describe(),
            "state": request.app[STATE].describe(),
        }
    )
