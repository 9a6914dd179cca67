"""The state store: opened once per worker, the one object the rest of the service uses.

    store = await open_store(location, options)
    store.responses / store.conversations / store.threads    our own tables
    store.checkpointer                                        LangGraph's, same database
    await store.close()

Opening connects (bounded by `connect_timeout_s`), migrates our schema and sets up the
checkpointer's; any failure raises `StoreUnavailable` naming the store and the reason, and
the worker does not start (see `setup_state` for why that is the choice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agent_service.settings import DatabricksAuth
from agent_service.state.config import StoreLocation
from agent_service.state.conversations import ConversationRepository
from agent_service.state.database import Database, PostgresDatabase, SqliteDatabase, open_sqlite
from agent_service.state.events import EventLog, StoredEvent
from agent_service.state.identity import thread_key
from agent_service.state.lakebase import LakebaseCredentials
from agent_service.state.migrations import migrate
from agent_service.state.responses import ResponseRepository
from agent_service.state.runs import RunRepository
from agent_service.state.serde import dumps, loads
from agent_service.state.threads import ThreadRepository

log = logging.getLogger(__name__)

# Not the migration lock: LangGraph's own setup runs statements that cannot be in a
# transaction (CREATE INDEX CONCURRENTLY), so it is serialised with a session-level lock.
_CHECKPOINTER_SETUP_LOCK_KEY = 0x6167656E742D6370


_SETUP_RETRY_S = 0.05
# A stream's events with no saved response after this long belong to a run that failed.
_ORPHAN_EVENTS_S = 86400.0


class Closable(Protocol):
    async def close(self) -> None: ...


class StoreUnavailable(RuntimeError):
    """The state store cannot be used; the message names it (without credentials) and why."""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    # Stored responses, conversations and threads are deleted this long after their last
    # use; 0 keeps them until deleted.
    retention_s: float = 30 * 86400.0
    # PostgreSQL connections per worker.
    pool_size: int = 10
    # How long start-up waits for the database (and SQLite for another process's write).
    connect_timeout_s: float = 30.0
    # Stored stream events are deleted this long after they were written; 0 = with their
    # response.
    event_retention_s: float = 0.0
    databricks: DatabricksAuth = field(default_factory=DatabricksAuth)


class StateStore:
    def __init__(
        self,
        location: StoreLocation,
        db: Database,
        checkpointer: BaseCheckpointSaver[str],
        *,
        retention_s: float | None,
        schema_version: int,
        event_retention_s: float = 0.0,
        closers: tuple[Closable, ...] = (),
    ) -> None:
        self.location = location
        self.db = db
        self.checkpointer = checkpointer
        self.schema_version = schema_version
        self.responses = ResponseRepository(db, retention_s=retention_s)
        self.conversations = ConversationRepository(db, retention_s=retention_s)
        self.threads = ThreadRepository(db, retention_s=retention_s)
        self.events = EventLog(db)
        self.runs = RunRepository(db, retention_s=retention_s)
        self._event_retention_s = event_retention_s
        self._closers = closers

    def describe(self) -> dict[str, object]:
        """For /agent/info: where state lives, never a credential."""
        return {
            "backend": self.location.kind,
            "location": self.location.describe(),
            "schema_version": self.schema_version,
        }

    async def delete_response(self, owner: str, response_id: str) -> bool:
        """Delete a stored response; its thread's checkpoints go with the last response that
        used it (a conversation's thread stays with the conversation)."""
        async with self.db.transaction() as session:
            deleted = await self.responses.delete(owner, response_id, session)
            # A background run that did not complete has a run and events, no response.
            run = await session.execute(
                "DELETE FROM agent_runs WHERE id = ? AND owner = ?", (response_id, owner)
            )
            if deleted.found or run:
                await self.events.forget(session, response_id)
            unused = deleted.unused_thread
            if unused is not None:
                kind = await session.fetch_one(
                    "SELECT kind FROM agent_threads WHERE thread_id = ?", (unused,)
                )
                if kind is not None and kind["kind"] != "response":
                    unused = None
                else:
                    await self.threads.forget(session, unused)
        if unused is not None:
            await self.checkpointer.adelete_thread(unused)
        return deleted.found or bool(run)

    async def store_run(
        self,
        run_id: str,
        events: Sequence[StoredEvent],
        body: Mapping[str, Any],
        checkpoint_id: str | None = None,
    ) -> bool:
        """A background run's new events, its response as it stands (its status included)
        and the step checkpoint those events reach, in one transaction: a worker that dies
        mid-write leaves both or neither, never events the response lacks. The run's row
        first: a run that already ended (reaped, deleted) gets nothing more — False."""
        async with self.db.transaction() as session:
            if checkpoint_id is None:
                active = await self.runs.update(run_id, body, session)
            else:
                active = await self.runs.checkpointed(run_id, body, checkpoint_id, session)
            if active:
                await self.events.append(run_id, events, session)
        return active

    async def end_abandoned_run(
        self,
        run_id: str,
        *,
        stale_before: float,
        ending: Callable[[Mapping[str, Any], int], tuple[dict[str, Any], Sequence[StoredEvent]]],
        release_lease: bool = True,
    ) -> bool:
        """End a run whose worker stopped beating before `stale_before`: its status and
        response become what `ending` makes of the last stored response, and `ending`'s
        terminal events follow the stored ones, so that a client following the stream sees
        it end. False when the run is not (or no longer) abandoned: another instance ended
        it first, or its worker is alive. The thread lease the run held is given back
        (`release_lease`, unless the caller gives it back itself), its head unmoved: a failed
        turn is never continued, and the conversation's next turn is not refused."""
        async with self.db.transaction() as session:
            # The conditional update first: of two instances reaping at once, one wins.
            claimed = await session.execute(
                "UPDATE agent_runs SET status = 'failed' WHERE id = ?"
                " AND status IN ('queued', 'in_progress') AND heartbeat_at < ?",
                (run_id, stale_before),
            )
            if not claimed:
                return False
            row = await session.fetch_one(
                "SELECT body, thread_id, lease_holder FROM agent_runs WHERE id = ?", (run_id,)
            )
            last = await session.fetch_one(
                "SELECT MAX(seq) AS seq FROM agent_response_events WHERE response_id = ?",
                (run_id,),
            )
            after = int(last["seq"]) if last and last["seq"] is not None else -1
            assert row is not None
            body, events = ending(loads(row["body"]), after + 1)
            await session.execute(
                "UPDATE agent_runs SET status = ?, body = ? WHERE id = ?",
                (str(body["status"]), dumps(body), run_id),
            )
            now = time.time()
            await session.execute_many(
                "INSERT INTO agent_response_events (response_id, seq, event, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(run_id, e.sequence, e.event, e.payload, now) for e in events],
            )
            if release_lease and row["thread_id"] is not None:
                await session.execute(
                    "UPDATE agent_threads SET lease_holder = NULL, lease_until = NULL"
                    " WHERE thread_id = ? AND lease_holder = ?",
                    (row["thread_id"], row["lease_holder"]),
                )
        return True

    async def delete_conversation(self, owner: str, conversation_id: str) -> bool:
        """Delete a conversation, its items and the agent's memory of it."""
        thread_id = thread_key(owner, conversation_id)
        async with self.db.transaction() as session:
            found = await self.conversations.delete(owner, conversation_id, session)
            if found:
                await self.threads.forget(session, thread_id)
        if found:
            await self.checkpointer.adelete_thread(thread_id)
        return found

    async def sweep(self, now: float | None = None) -> int:
        """Delete what outlived the retention period; returns how many threads went."""
        now = time.time() if now is None else now
        async with self.db.transaction() as session:
            for table, key in (
                ("agent_response_items", "response_id"),
                ("agent_response_events", "response_id"),
                ("agent_conversation_items", "conversation_id"),
            ):
                parent = "agent_responses" if key == "response_id" else "agent_conversations"
                await session.execute(
                    f"DELETE FROM {table} WHERE {key} IN (SELECT id FROM {parent}"
                    " WHERE expires_at IS NOT NULL AND expires_at < ?)",
                    (now,),
                )
            await session.execute(
                "DELETE FROM agent_responses WHERE expires_at IS NOT NULL AND expires_at < ?",
                (now,),
            )
            await session.execute(
                "DELETE FROM agent_runs WHERE expires_at IS NOT NULL AND expires_at < ?", (now,)
            )
            # Events of streams whose response was never saved (the run failed) and that no
            # background run holds.
            await session.execute(
                "DELETE FROM agent_response_events WHERE created_at < ? AND response_id NOT IN"
                " (SELECT id FROM agent_responses) AND response_id NOT IN"
                " (SELECT id FROM agent_runs)",
                (now - _ORPHAN_EVENTS_S,),
            )
            if self._event_retention_s:
                await session.execute(
                    "DELETE FROM agent_response_events WHERE created_at < ?",
                    (now - self._event_retention_s,),
                )
            await session.execute(
                "DELETE FROM agent_conversations WHERE expires_at IS NOT NULL AND expires_at < ?",
                (now,),
            )
            expired = await session.fetch_all(
                "SELECT thread_id FROM agent_threads WHERE expires_at IS NOT NULL"
                " AND expires_at < ? AND (lease_until IS NULL OR lease_until < ?)",
                (now, now),
            )
            for row in expired:
                await self.threads.forget(session, row["thread_id"])
        for row in expired:
            await self.checkpointer.adelete_thread(row["thread_id"])
        return len(expired)

    async def close(self) -> None:
        for closable in self._closers:
            await closable.close()


async def open_store(location: StoreLocation, options: StoreOptions) -> StateStore:
    try:
        if location.kind == "sqlite":
            return await _open_sqlite(location, options)
        return await _open_postgres(location, options)
    except StoreUnavailable:
        raise
    except Exception as exc:
        # Driver messages name hosts, databases and users, never passwords: fit for the log.
        raise StoreUnavailable(
            f"state store {location.describe()} cannot be used: {type(exc).__name__}: {exc}"
        ) from exc


def _retention(options: StoreOptions) -> float | None:
    return options.retention_s or None


async def _open_sqlite(location: StoreLocation, options: StoreOptions) -> StateStore:
    db = await SqliteDatabase.open(location.path, busy_timeout_s=options.connect_timeout_s)
    try:
        version = await migrate(db)
        saver_conn = await open_sqlite(
            location.path, busy_timeout_s=options.connect_timeout_s, autocommit=False
        )
        saver = AsyncSqliteSaver(saver_conn)
        await saver.setup()
    except BaseException:
        await db.close()
        raise
    return StateStore(
        location,
        db,
        saver,
        retention_s=_retention(options),
        schema_version=version,
        event_retention_s=options.event_retention_s,
        closers=(db, saver_conn),
    )


async def _open_postgres(location: StoreLocation, options: StoreOptions) -> StateStore:
    password = None
    if location.kind == "lakebase":
        password = await LakebaseCredentials.connect(
            options.databricks,
            instance=location.lakebase_instance,
            endpoint=location.lakebase_endpoint,
        )
    db = await PostgresDatabase.open(
        location.params,
        password=password,
        # The checkpointer's setup needs a second connection while the lock holds one.
        pool_size=max(2, options.pool_size),
        connect_timeout_s=options.connect_timeout_s,
    )
    try:
        version = await migrate(db)
        saver = AsyncPostgresSaver(db.pool)
        async with asyncio.timeout(options.connect_timeout_s):
            await _set_up_postgres_checkpointer(db, saver)
    except BaseException:
        await db.close()
        raise
    return StateStore(
        location,
        db,
        saver,
        retention_s=_retention(options),
        schema_version=version,
        event_retention_s=options.event_retention_s,
        closers=(db,),
    )


async def _set_up_postgres_checkpointer(db: PostgresDatabase, saver: AsyncPostgresSaver) -> None:
    """LangGraph's setup, one worker at a time. The lock is tried, not waited for: a session
    blocked in pg_advisory_lock holds a snapshot, and the CREATE INDEX CONCURRENTLY of the
    worker holding the lock would wait for that snapshot forever."""
    async with db.connection() as conn:
        while True:
            cursor = await conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS locked", (_CHECKPOINTER_SETUP_LOCK_KEY,)
            )
            row = await cursor.fetchone()
            if row is not None and row["locked"]:
                break
            # Another worker is setting up; that takes a fraction of a second.
            await asyncio.sleep(_SETUP_RETRY_S)
        try:
            await saver.setup()
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_CHECKPOINTER_SETUP_LOCK_KEY,))
