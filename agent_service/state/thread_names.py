"""Which conversation a Chat Completions, ChatAgent or MLflow request continues.

Clients name their conversation in one of three places; the first one present wins:

1. `custom_inputs.thread_id`  — LangGraph's own name (Databricks LangGraph templates)
2. `custom_inputs.session_id` — Databricks agent templates' session
3. `context.conversation_id`  — MLflow ChatAgent / ResponsesAgent context

(On /v1/responses, OpenAI's `conversation` and `previous_response_id` come before all
three.) The name comes back to the client as `custom_outputs.thread_id` and in the
`X-Thread-Id` header. Names are the client's; the agent's LangGraph thread is the name
prefixed with its owner (`identity.thread_key`), so two callers never share one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_service.errors import InvalidBody

# How long a thread name may be: ids, not documents.
MAX_NAME_LENGTH = 256

SOURCES = (
    ("custom_inputs", "thread_id"),
    ("custom_inputs", "session_id"),
    ("context", "conversation_id"),
)


@dataclass(frozen=True, slots=True)
class ClientThread:
    name: str
    # The JSON path the name came from, for error messages.
    source: str


def client_thread(body: Mapping[str, Any]) -> ClientThread | None:
    for container, key in SOURCES:
        holder = body.get(container)
        if not isinstance(holder, Mapping):
            continue
        value = holder.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            name, source = str(value).strip(), f"$.{container}.{key}"
            if len(name) > MAX_NAME_LENGTH:
                raise InvalidBody(
                    f"{source}: a conversation id of at most {MAX_NAME_LENGTH} characters",
                    param=source,
                )
            return ClientThread(name, source)
    return None
