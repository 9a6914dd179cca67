"""What the store hands back: plain immutable records and pages of items (no database types)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Order = Literal["asc", "desc"]
# Who made a thread: a stored response chain, a conversation, or a client-chosen id
# (context.conversation_id, custom_inputs.thread_id / session_id).
ThreadKind = Literal["response", "conversation", "client"]

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    status: str
    body: Mapping[str, Any]
    # Where the agent's memory of this response is: its LangGraph thread and the checkpoint
    # the run ended on (None when the run was not checkpointed).
    thread_id: str | None
    checkpoint_id: str | None
    conversation_id: str | None
    previous_response_id: str | None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    created_at: int
    metadata: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        """OpenAI's conversation object."""
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class ItemPage:
    """One page of a list of items, as OpenAI's list endpoints return it."""

    items: list[Item] = field(default_factory=list)
    has_more: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": self.items,
            "first_id": self.items[0]["id"] if self.items else None,
            "last_id": self.items[-1]["id"] if self.items else None,
            "has_more": self.has_more,
        }


@dataclass(frozen=True, slots=True)
class NewResponse:
    """Everything saved about one response, in one transaction."""

    id: str
    owner: str
    body: Mapping[str, Any]
    input_items: list[Item]
    output_items: list[Item]
    thread_id: str | None = None
    checkpoint_id: str | None = None
    conversation_id: str | None = None
    previous_response_id: str | None = None
