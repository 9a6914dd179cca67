"""Thin handlers: read typed state, hand the validated body to the task, answer JSON or SSE."""

from __future__ import annotations

import os
from typing import Any

import orjson
from aiohttp import web

from . import runner
from .keys import AGENT, BODY, ENDPOINT, REQUEST_ID, SETTINGS
from .streaming import stream_answer
from .tasks.base import RequestContext


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def invoke_agent(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    endpoint = request[ENDPOINT]
    body = request[BODY]
    graph = request.app[AGENT].require_graph()
    exchange = endpoint.task.exchange(
        body, RequestContext(request[REQUEST_ID], settings.agent_name)
    )
    if body.get("stream") is True:
        events = runner.stream(graph, exchange.run)
        return await stream_answer(
            request, exchange, events, endpoint.framing, settings.sse_heartbeat_s
        )
    reducer = exchange.reducer()
    for event in await runner.invoke(graph, exchange.run):
        reducer.add(event)
    return json_response(reducer.result())


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
        }
    )
