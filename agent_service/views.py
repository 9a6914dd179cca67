"""Thin handlers: read typed state, hand the validated body to the task, answer JSON or SSE."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from aiohttp import web

from . import runner
from .keys import AGENT, BODY, ENDPOINT, REQUEST_ID, SETTINGS, TRACE_ID
from .sse import EventStream
from .streaming import stream_answer
from .tasks.base import RequestContext, TraceReturn
from .traced_run import TracedRun
from .tracing import RequestFacts, RequestTrace

RETURN_TRACE_ID_HEADER = "x-mlflow-return-trace-id"


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def invoke_agent(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    endpoint = request[ENDPOINT]
    body = request[BODY]
    agent = request.app[AGENT]
    graph = agent.require_graph()
    trace = _start_trace(request, endpoint.task.name, body)
    if trace is not None:
        request[TRACE_ID] = trace.trace_id
    trace_return = _trace_return(request, body, trace)
    context = RequestContext(
        request[REQUEST_ID],
        settings.agent_name,
        callbacks=(trace.recorder,) if trace else (),
        trace_return=trace_return,
    )
    exchange = endpoint.task.exchange(body, context)
    traced = TracedRun(trace, exchange, trace_return)
    if body.get("stream") is True:
        stream = EventStream(request, endpoint.framing, settings.sse_heartbeat_s)
        return await stream_answer(stream, exchange, runner.stream(graph, exchange.run), traced)
    try:
        events = await runner.invoke(graph, exchange.run)
    except (Exception, asyncio.CancelledError) as exc:
        traced.stop(exc)
        raise
    reducer = exchange.reducer() if trace is None else None
    for event in events:
        if reducer is not None:
            reducer.add(event)
        await traced.observe(event)
    return json_response((reducer or traced.reducer).result())


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
            "tracing": agent.tracer.status.describe(),
        }
    )
