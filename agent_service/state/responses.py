"""Stored responses: the response object, its input and output items, by owner."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from agent_service.state.database import Database, Session
from agent_service.state.paging import page_of
from agent_service.state.records import Item, ItemPage, NewResponse, Order, StoredResponse
from agent_service.state.serde import dumps, loads


@dataclass(frozen=True, slots=True)
class Deleted:
    found: bool
    # The response's thread when no stored response uses it any more: its checkpoints go too
    # (unless a conversation or a client-named thread owns it: the caller decides).
    unused_thread: str | None = None


class ResponseRepository:
    def __init__(self, db: Database, *, retention_s: float | None) -> None:
        self._db = db
        self._retention_s = retention_s

    async def save(self, response: NewResponse, session: Session) -> None:
        """Insert the response and its items (inside the caller's transaction)."""
        now = time.time()
        expires = now + self._retention_s if self._retention_s else None
        await session.execute(
            "INSERT INTO agent_responses (id, owner, created_at, expires_at, status, thread_id,"
            " checkpoint_id, conversation_id, previous_response_id, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                response.id,
                response.owner,
                now,
                expires,
                str(response.body.get("status", "completed")),
                response.thread_id,
                response.checkpoint_id,
                response.conversation_id,
                response.previous_response_id,
                dumps(response.body),
            ),
        )
        rows = [
            (response.id, kind, position, item["id"], response.owner, dumps(item))
            for kind, items in (("input", response.input_items), ("output", response.output_items))
            for position, item in enumerate(items)
        ]
        if rows:
            await session.execute_many(
                "INSERT INTO agent_response_items"
                " (response_id, kind, position, item_id, owner, body) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        row = await self._db.fetch_one(
            "SELECT id, status, body, thread_id, checkpoint_id, conversation_id,"
            " previous_response_id FROM agent_responses WHERE id = ? AND owner = ?"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (response_id, owner, time.time()),
        )
        if row is None:
            return None
        return StoredResponse(
            id=row["id"],
            status=row["status"],
            body=loads(row["body"]),
            thread_id=row["thread_id"],
            checkpoint_id=row["checkpoint_id"],
            conversation_id=row["conversation_id"],
            previous_response_id=row["previous_response_id"],
        )

    async def delete(self, owner: str, response_id: str, session: Session) -> Deleted:
        """Delete the response and its items (inside the caller's transaction)."""
        row = await session.fetch_one(
            "SELECT thread_id FROM agent_responses WHERE id = ? AND owner = ?",
            (response_id, owner),
        )
        if row is None:
            return Deleted(found=False)
        await session.execute(
            "DELETE FROM agent_response_items WHERE response_id = ?", (response_id,)
        )
        await session.execute("DELETE FROM agent_responses WHERE id = ?", (response_id,))
        thread_id: str | None = row["thread_id"]
        if thread_id is None:
            return Deleted(found=True)
        still_used = await session.fetch_one(
            "SELECT 1 AS used FROM agent_responses WHERE thread_id = ? LIMIT 1", (thread_id,)
        )
        return Deleted(found=True, unused_thread=None if still_used else thread_id)

    async def input_items(
        self, owner: str, response_id: str, *, after: str | None, limit: int, order: Order
    ) -> ItemPage | None:
        """A page of the response's input items; None when the response or `after` is
        unknown to this owner."""
        if await self.get(owner, response_id) is None:
            return None
        return await page_of(
            self._db,
            table="agent_response_items",
            scope="response_id",
            scope_value=response_id,
            position="position",
            after=after,
            limit=limit,
            order=order,
            extra_where=" AND kind = ?",
            extra_params=("input",),
        )

    async def find_items(self, owner: str, item_ids: Iterable[str]) -> dict[str, Item]:
        """Items this owner stored (input or output of any response) by id."""
        wanted = list(dict.fromkeys(item_ids))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        rows = await self._db.fetch_all(
            f"SELECT item_id, body FROM agent_response_items WHERE owner = ?"
            f" AND item_id IN ({marks})",
            (owner, *wanted),
        )
        return {row["item_id"]: loads(row["body"]) for row in rows}
