"""Every typed key for state on the application and on requests (no string keys)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_service.agents.runtime import AgentRuntime
from agent_service.http.admission import RequestGate
from agent_service.http.routes import Endpoint
from agent_service.observability.metrics import Metrics
from agent_service.schemas import SchemaSet
from agent_service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SCHEMAS = web.AppKey("schemas", SchemaSet)
AGENT = web.AppKey("agent", AgentRuntime)
# The task and framing each POST route serves, looked up by the validation middleware.
ENDPOINTS = web.AppKey("endpoints", dict[web.AbstractRoute, Endpoint])
GATE = web.AppKey("gate", RequestGate)
# The OpenAPI document served at /openapi.json, built from the bundled schemas.
OPENAPI = web.AppKey("openapi", dict[str, Any])
METRICS = web.AppKey("metrics", Metrics)

REQUEST_ID = web.RequestKey("request_id", str)
# The event loop's clock when the request arrived (latency, time to first token).
STARTED = web.RequestKey("started", float)
# Databricks Apps' on-behalf-of-user token, for this request only: never logged or traced.
USER_TOKEN = web.RequestKey("user_token", str)
# The MLflow trace of the request, when it has one.
TRACE_ID = web.RequestKey("trace_id", str)
ENDPOINT = web.RequestKey("endpoint", Endpoint)
# The request body after JSON parsing and schema validation.
BODY = web.RequestKey("body", dict[str, Any])
