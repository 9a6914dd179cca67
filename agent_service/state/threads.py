"""The agent's threads (LangGraph thread ids): who owns each, how long it is kept, and a
lease so that two requests never extend the same thread at once.

Two turns of one conversation running together would both start from the same checkpoint
and one turn would vanish from the agent's memory. The second request is refused instead
(`ThreadBusy`, as OpenAI refuses a conversation already in use) until the first finishes
or its lease runs out (a worker that died never holds a thread for longer than that).

The thread's head is the checkpoint its last completed turn ended on; the next turn forks
from it. A turn that failed may have left a checkpoint of its own behind (LangGraph saves
on the way out), and that one is never continued: the agent does not remember half a turn.
"""

from __future__ import annotations

import time

from agent_service.state.database import Database, Session
from agent_service.state.records import ThreadKind


class ThreadBusy(Exception):
    """Another request is running on this thread."""


class ThreadRepository:
    def __init__(self, db: Database, *, retention_s: float | None) -> None:
        self._db = db
        self._retention_s = retention_s

    async def acquire(
        self, thread_id: str, *, owner: str, kind: ThreadKind, holder: str, lease_s: float
    ) -> str | None:
        """Create the thread or extend it, and take its lease; `ThreadBusy` when another
        holder's lease is still running. Returns the thread's head checkpoint (None for a
        thread that has no completed turn yet)."""
        now = time.time()
        expires = now + self._retention_s if self._retention_s else None
        taken = await self._db.execute(
            "INSERT INTO agent_threads (thread_id, owner, kind, created_at, updated_at,"
            " expires_at, lease_holder, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at,"
            " expires_at = excluded.expires_at, lease_holder = excluded.lease_holder,"
            " lease_until = excluded.lease_until"
            " WHERE agent_threads.lease_until IS NULL OR agent_threads.lease_until < ?"
            " OR agent_threads.lease_holder = excluded.lease_holder",
            (thread_id, owner, kind, now, now, expires, holder, now + lease_s, now),
        )
        if not taken:
            raise ThreadBusy(thread_id)
        row = await self._db.fetch_one(
            "SELECT head_checkpoint FROM agent_threads WHERE thread_id = ?", (thread_id,)
        )
        return row["head_checkpoint"] if row else None

    async def release(self, thread_id: str, holder: str, *, head: str | None = None) -> None:
        """Give the lease back; `head` is the checkpoint of the turn that just completed."""
        await self._db.execute(
            "UPDATE agent_threads SET lease_holder = NULL, lease_until = NULL,"
            " head_checkpoint = COALESCE(?, head_checkpoint)"
            " WHERE thread_id = ? AND lease_holder = ?",
            (head, thread_id, holder),
        )

    async def touch(self, thread_id: str, *, owner: str, kind: ThreadKind) -> None:
        """Create the thread, or keep it for another retention period (no lease: a run that
        forks from a past checkpoint cannot collide with another)."""
        now = time.time()
        expires = now + self._retention_s if self._retention_s else None
        await self._db.execute(
            "INSERT INTO agent_threads (thread_id, owner, kind, created_at, updated_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (thread_id) DO UPDATE"
            " SET updated_at = excluded.updated_at, expires_at = excluded.expires_at",
            (thread_id, owner, kind, now, now, expires),
        )

    async def kind_of(self, thread_id: str) -> ThreadKind | None:
        row = await self._db.fetch_one(
            "SELECT kind FROM agent_threads WHERE thread_id = ?", (thread_id,)
        )
        return row["kind"] if row else None

    async def forget(self, session: Session, thread_id: str) -> None:
        await session.execute("DELETE FROM agent_threads WHERE thread_id = ?", (thread_id,))
