"""The OpenAPI 3.1 document of the service, generated from the bundled JSON Schemas.

OpenAPI 3.1 uses JSON Schema 2020-12, so the schemas go in unchanged; only their
cross-file `$ref`s (`urn:agent-service:<file>#/$defs/<name>`) are rewritten to point into
`components/schemas`, where every file and each of its `$defs` becomes one entry.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from agent_service.http.routes import Endpoint
from agent_service.schemas import URN_PREFIX, SchemaSet

_URN_REF = re.compile(r"^" + re.escape(URN_PREFIX) + r"(?P<doc>[^#]+)(?:#/\$defs/(?P<def>.+))?$")
_LOCAL_REF = re.compile(r"^#/\$defs/(?P<def>.+)$")

# Statuses an agent route may answer with, besides 200.
_AGENT_ERRORS = {
    "400": "Invalid JSON, a body that is not an object, or a schema violation (param = JSON path)",
    "401": "Missing or wrong API key (when AGENT_API_KEYS is set)",
    "404": "The conversation named in the body does not exist (for this caller)",
    "409": "Another request is running in the same conversation (code conversation_locked)",
    "413": "Body over MAX_BODY_BYTES",
    "415": "Not JSON",
    "429": "The model endpoint is rate limiting",
    "500": "Unexpected server error",
    "502": "The model endpoint failed or refused the credentials",
    "503": "Overloaded, shutting down, or starting",
    "504": "Model endpoint timeout or request deadline",
}
# One server-sent event: a JSON payload (the task's chunk or `response.*` event, or an error),
# or the `[DONE]` sentinel; Responses streams on /v1/responses name each event.
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "pattern": r"^(\[DONE\]|\{.*\})$"},
    },
}


def build_openapi(schemas: SchemaSet, endpoints: dict[str, Endpoint], title: str) -> dict[str, Any]:
    components = _components(schemas)
    paths: dict[str, Any] = {
        path: {"post": _agent_operation(path, endpoint)} for path, endpoint in endpoints.items()
    }
    paths["/health"] = {"get": _get("Liveness", {"200": _json_object("The process serves HTTP")})}
    paths["/ready"] = {
        "get": _get(
            "Readiness",
            {"200": _json_object("Ready"), "503": _json_object("Starting or draining")},
        )
    }
    paths["/agent/info"] = {"get": _get("What this agent is", {"200": _json_object("Agent info")})}
    paths["/metrics"] = {
        "get": _get(
            "Prometheus metrics",
            {
                "200": {
                    "description": "Text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        )
    }
    paths["/openapi.json"] = {"get": _get("This document", {"200": _json_object("OpenAPI")})}
    paths.update(_stored_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {"schemas": components},
    }


def _components(schemas: SchemaSet) -> dict[str, Any]:
    components: dict[str, Any] = {}
    for name in sorted(schemas.names):
        document = copy.deepcopy(schemas.document(name))
        definitions = document.pop("$defs", {})
        for key in ("$id", "$schema"):
            document.pop(key, None)
        components[name] = _rewrite(document, name)
        for definition, schema in definitions.items():
            components[f"{name}.{definition}"] = _rewrite(schema, name)
    return components


def _rewrite(node: Any, document: str) -> Any:
    if isinstance(node, dict):
        rewritten = {key: _rewrite(value, document) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str):
            rewritten["$ref"] = _component_ref(ref, document)
        return rewritten
    if isinstance(node, list):
        return [_rewrite(item, document) for item in node]
    return node


def _component_ref(ref: str, document: str) -> str:
    if match := _URN_REF.match(ref):
        target = match["doc"] + (f".{match['def']}" if match["def"] else "")
    elif match := _LOCAL_REF.match(ref):
        target = f"{document}.{match['def']}"
    elif ref == "#":
        target = document
    else:
        raise ValueError(f"schema {document}: cannot place $ref {ref!r} in OpenAPI components")
    return f"#/components/schemas/{target}"


def _agent_operation(path: str, endpoint: Endpoint) -> dict[str, Any]:
    spec = endpoint.spec
    answer = spec.response_schema
    responses: dict[str, Any] = {
        "200": {
            "description": "The answer: JSON, or Server-Sent Events when the body says stream=true",
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}},
                # In OpenAPI 3.1 the schema of an event stream describes one event.
                "text/event-stream": {"schema": _SSE_EVENT},
            },
        }
    }
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/error"}}}}
    for status, description in _AGENT_ERRORS.items():
        responses[status] = {"description": description, **error}
    return {
        "summary": f"{spec.task} on {path}",
        "operationId": "post_" + re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_"),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{spec.request_schema}"}
                }
            },
        },
        "responses": responses,
    }


def _get(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "responses": responses}


def _json_object(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    errors = {"content": {"application/json": {"schema": _ref("error")}}}
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}},
        "400": {"description": "Invalid parameters or body (param names the field)", **errors},
        "401": {"description": "Missing or wrong API key (when AGENT_API_KEYS is set)", **errors},
        "404": {"description": "No such id for this caller, or no such route", **errors},
        "413": {"description": "Body over MAX_BODY_BYTES", **errors},
        "415": {"description": "Not JSON", **errors},
    }


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_PAGING = [
    {"name": "after", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
]


_RESUME = [
    {"name": "stream", "in": "query", "schema": {"type": "boolean"}},
    {"name": "starting_after", "in": "query", "schema": {"type": "integer"}},
]


def _operation(
    summary: str,
    parameters: list[dict[str, Any]],
    answer: dict[str, Any],
    body: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": parameters,
        "responses": _answer(answer),
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def _stored_paths() -> dict[str, Any]:
    """The routes of what the server keeps (agent_service/http/stored.py)."""
    response_id = [_path_id("response_id")]
    conversation_id = [_path_id("conversation_id")]
    conversation = _ref("stored-objects.conversation")
    item_list = _ref("stored-objects.item_list")
    paths: dict[str, Any] = {}
    for prefix in ("/v1/responses", "/responses"):
        retrieve = _operation(
            "A stored response; with stream=true, its stream again",
            [*response_id, *_RESUME],
            _ref("agent-v1-responses.response"),
        )
        retrieve["responses"]["200"]["content"]["text/event-stream"] = {"schema": _SSE_EVENT}
        paths[prefix + "/{response_id}"] = {
            "get": retrieve,
            "delete": _operation(
                "Delete a stored response", response_id, _ref("stored-objects.response_deleted")
            ),
        }
        paths[prefix + "/{response_id}/input_items"] = {
            "get": _operation("A stored response's input items", response_id + _PAGING, item_list)
        }
        paths[prefix + "/{response_id}/cancel"] = {
            "post": _operation(
                "Cancel a background response", response_id, _ref("agent-v1-responses.response")
            )
        }
        if prefix == "/responses":
            # Databricks' LongRunningAgentServer's name for the same retrieve.
            paths["/retrieve/{response_id}"] = {"get": retrieve}
    paths["/v1/conversations"] = {
        "post": _operation("Create a conversation", [], conversation, "conversation-create.request")
    }
    paths["/v1/conversations/{conversation_id}"] = {
        "get": _operation("A conversation", conversation_id, conversation),
        "post": _operation(
            "Update a conversation's metadata",
            conversation_id,
            conversation,
            "conversation-update.request",
        ),
        "delete": _operation(
            "Delete a conversation", conversation_id, _ref("stored-objects.conversation_deleted")
        ),
    }
    paths["/v1/conversations/{conversation_id}/items"] = {
        "get": _operation("A conversation's items", conversation_id + _PAGING, item_list),
        "post": _operation(
            "Add items to a conversation", conversation_id, item_list, "conversation-items.request"
        ),
    }
    paths["/v1/conversations/{conversation_id}/items/{item_id}"] = {
        "get": _operation(
            "One item of a conversation",
            [*conversation_id, _path_id("item_id")],
            _ref("stored-objects.item"),
        )
    }
    return paths
