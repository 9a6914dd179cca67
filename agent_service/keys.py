"""Every typed key for state on the application and on requests (no string keys).

A leaf: it imports only aiohttp. The types the keys carry are named for the type checker
only, so importing a key never loads LangGraph, the OpenAI SDK or MLflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from agent_service.http.admission import RequestGate
    from agent_service.http.background import BackgroundRuns
    from agent_service.http.routes import Endpoint
    from agent_service.http.state import StateRuntime
    from agent_service.http.ui_assets import UiAssets
    from agent_service.observability.metrics import Metrics
    from agent_service.runtime import AgentRuntime
    from agent_service.schemas import SchemaSet
    from agent_service.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
SCHEMAS: web.AppKey[SchemaSet] = web.AppKey("schemas")
AGENT: web.AppKey[AgentRuntime] = web.AppKey("agent")
# The task and framing each POST route serves, looked up by the validation middleware.
ENDPOINTS: web.AppKey[dict[web.AbstractRoute, Endpoint]] = web.AppKey("endpoints")
GATE: web.AppKey[RequestGate] = web.AppKey("gate")
# The OpenAPI document served at /openapi.json, built from the bundled schemas.
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
# The chat page's files, read once per worker.
UI_ASSETS: web.AppKey[UiAssets] = web.AppKey("ui_assets")
# The state store (stored responses, conversations, the agent's memory), once opened.
STATE: web.AppKey[StateRuntime] = web.AppKey("state")
# This worker's background runs (`background: true`).
RUNS: web.AppKey[BackgroundRuns] = web.AppKey("runs")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
# The event loop's clock when the request arrived (latency, time to first token).
STARTED: web.RequestKey[float] = web.RequestKey("started")
# Databricks Apps' on-behalf-of-user token, for this request only: never logged or traced.
USER_TOKEN: web.RequestKey[str] = web.RequestKey("user_token")
# The MLflow trace of the request, when it has one.
TRACE_ID: web.RequestKey[str] = web.RequestKey("trace_id")
ENDPOINT: web.RequestKey[Endpoint] = web.RequestKey("endpoint")
# The request body after JSON parsing and schema validation.
BODY: web.RequestKey[dict[str, Any]] = web.RequestKey("body")
# Whose stored state the request may see: a hash of its API key or of the Databricks Apps
# user, never the key (agent_service/state/identity.py).
CALLER: web.RequestKey[str] = web.RequestKey("caller")
# The conversation (thread) name a request continues, returned in the X-Thread-Id header.
THREAD_NAME: web.RequestKey[str] = web.RequestKey("thread_name")
# Its size in bytes, as received: large bodies are turned into the agent's input off the loop.
BODY_BYTES: web.RequestKey[int] = web.RequestKey("body_bytes")
# The response whose status line and headers went out (a stream): once it is set, nothing
# but that response's own body may be written on the connection.
STARTED_RESPONSE: web.RequestKey[web.StreamResponse] = web.RequestKey("started_response")
