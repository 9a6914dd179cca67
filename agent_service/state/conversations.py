"""Conversations: OpenAI's conversation objects and their ordered items, by owner.

An item added through the Conversations API (or at creation) is not yet in the agent's
memory (`in_memory = 0`): the next response in the conversation hands it to the agent
before its own input, and then marks it remembered. Items a response produced are in
memory already.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence

from agent_service.state.database import Database, Session
from agent_service.state.paging import page_of
from agent_service.state.records import Conversation, Item, ItemPage, Order
from agent_service.state.serde import dumps, loads


def new_conversation_id() -> str:
    return f"conv_{uuid.uuid4().hex}"


class ConversationRepository:
    def __init__(self, db: Database, *, retention_s: float | None) -> None:
        self._db = db
        self._retention_s = retention_s

    def _expiry(self, now: float) -> float | None:
        return now + self._retention_s if self._retention_s else None

    async def create(
        self, owner: str, metadata: Mapping[str, str], items: Sequence[Item]
    ) -> Conversation:
        now = time.time()
        conversation = Conversation(new_conversation_id(), int(now), dict(metadata))
        async with self._db.transaction() as session:
            await session.execute(
                "INSERT INTO agent_conversations (id, owner, created_at, updated_at, expires_at,"
                " metadata) VALUES (?, ?, ?, ?, ?, ?)",
                (conversation.id, owner, now, now, self._expiry(now), dumps(metadata)),
            )
            await self.append(session, conversation.id, items, in_memory=False)
        return conversation

    async def get(
        self, owner: str, conversation_id: str, session: Session | None = None
    ) -> Conversation | None:
        row = await (session or self._db).fetch_one(
            "SELECT id, created_at, metadata FROM agent_conversations WHERE id = ? AND owner = ?"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (conversation_id, owner, time.time()),
        )
        if row is None:
            return None
        return Conversation(row["id"], int(row["created_at"]), loads(row["metadata"]))

    async def recent(self, owner: str, *, limit: int) -> list[tuple[Conversation, float]]:
        """The owner's conversations with the time of their last change, most recent first
        (the chat page's list)."""
        rows = await self._db.fetch_all(
            "SELECT id, created_at, updated_at, metadata FROM agent_conversations"
            " WHERE owner = ? AND (expires_at IS NULL OR expires_at > ?)"
            " ORDER BY updated_at DESC LIMIT ?",
            (owner, time.time(), limit),
        )
        return [
            (
                Conversation(row["id"], int(row["created_at"]), loads(row["metadata"])),
                float(row["updated_at"]),
            )
            for row in rows
        ]

    async def update(
        self, owner: str, conversation_id: str, metadata: Mapping[str, str]
    ) -> Conversation | None:
        now = time.time()
        async with self._db.transaction() as session:
            changed = await session.execute(
                "UPDATE agent_conversations SET metadata = ?, updated_at = ?, expires_at = ?"
                " WHERE id = ? AND owner = ?",
                (dumps(metadata), now, self._expiry(now), conversation_id, owner),
            )
            if not changed:
                return None
            return await self.get(owner, conversation_id, session)

    async def delete(self, owner: str, conversation_id: str, session: Session) -> bool:
        deleted = await session.execute(
            "DELETE FROM agent_conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
        )
        if deleted:
            await session.execute(
                "DELETE FROM agent_conversation_items WHERE conversation_id = ?", (conversation_id,)
            )
        return bool(deleted)

    async def append(
        self, session: Session, conversation_id: str, items: Sequence[Item], *, in_memory: bool
    ) -> None:
        if not items:
            return
        await session.execute_many(
            "INSERT INTO agent_conversation_items (conversation_id, item_id, body, in_memory)"
            " VALUES (?, ?, ?, ?)",
            [(conversation_id, item["id"], dumps(item), int(in_memory)) for item in items],
        )
        now = time.time()
        await session.execute(
            "UPDATE agent_conversations SET updated_at = ?, expires_at = ? WHERE id = ?",
            (now, self._expiry(now), conversation_id),
        )

    async def not_in_memory(self, conversation_id: str) -> list[Item]:
        """Items added through the API that the agent has not seen yet, in order."""
        rows = await self._db.fetch_all(
            "SELECT body FROM agent_conversation_items WHERE conversation_id = ?"
            " AND in_memory = 0 ORDER BY seq",
            (conversation_id,),
        )
        return [loads(row["body"]) for row in rows]

    async def remember(
        self, session: Session, conversation_id: str, item_ids: Sequence[str]
    ) -> None:
        """Mark items as handed to the agent."""
        if not item_ids:
            return
        marks = ", ".join("?" for _ in item_ids)
        await session.execute(
            f"UPDATE agent_conversation_items SET in_memory = 1 WHERE conversation_id = ?"
            f" AND item_id IN ({marks})",
            (conversation_id, *item_ids),
        )

    async def items(
        self,
        owner: str,
        conversation_id: str,
        *,
        after: str | None,
        limit: int,
        order: Order,
    ) -> ItemPage | None:
        if await self.get(owner, conversation_id) is None:
            return None
        return await page_of(
            self._db,
            table="agent_conversation_items",
            scope="conversation_id",
            scope_value=conversation_id,
            position="seq",
            after=after,
            limit=limit,
            order=order,
        )

    async def item(self, conversation_id: str, item_id: str) -> Item | None:
        row = await self._db.fetch_one(
            "SELECT body FROM agent_conversation_items WHERE conversation_id = ? AND item_id = ?",
            (conversation_id, item_id),
        )
        return loads(row["body"]) if row else None

    async def find_items(self, owner: str, item_ids: Sequence[str]) -> dict[str, Item]:
        """Items of this owner's conversations, by id."""
        if not item_ids:
            return {}
        marks = ", ".join("?" for _ in item_ids)
        rows = await self._db.fetch_all(
            "SELECT i.item_id AS item_id, i.body AS body FROM agent_conversation_items i"
            " JOIN agent_conversations c ON c.id = i.conversation_id"
            f" WHERE c.owner = ? AND i.item_id IN ({marks})",
            (owner, *item_ids),
        )
        return {row["item_id"]: loads(row["body"]) for row in rows}
