"""The store's schema, as numbered migrations applied once at start-up.

Every worker of every instance runs `migrate()` when it starts; they may start at the same
moment. The migrations run inside one transaction that first takes a lock every other
migrator waits for (PostgreSQL: a transaction-level advisory lock; SQLite: the write lock of
`BEGIN IMMEDIATE`), then reads the version table: the first worker applies what is missing,
the others find nothing left to do. DDL is transactional on both databases, so a migration
that fails leaves the schema as it was.

To change the schema, append a migration; never edit one that has shipped. A database whose
version is newer than this code knows is refused (an older release must not write to it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent_service.state.database import Database, Dialect, Session

log = logging.getLogger(__name__)

# Any constant; the same one in every process. ("agent-st" as a 64-bit integer.)
MIGRATION_LOCK_KEY = 0x6167656E742D7374


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sqlite: str
    postgresql: str

    def statements(self, dialect: Dialect) -> list[str]:
        script = self.sqlite if dialect == "sqlite" else self.postgresql
        return [statement.strip() for statement in script.split(";") if statement.strip()]


def _tables(*, real: str, serial: str) -> str:
    return f"""
    CREATE TABLE agent_threads (
        thread_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL,
        expires_at {real},
        lease_holder TEXT,
        lease_until {real},
        head_checkpoint TEXT
    );
    CREATE INDEX agent_threads_expiry ON agent_threads (expires_at);
    CREATE TABLE agent_responses (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at {real} NOT NULL,
        expires_at {real},
        status TEXT NOT NULL,
        thread_id TEXT,
        checkpoint_id TEXT,
        conversation_id TEXT,
        previous_response_id TEXT,
        body TEXT NOT NULL
    );
    CREATE INDEX agent_responses_thread ON agent_responses (thread_id);
    CREATE INDEX agent_responses_expiry ON agent_responses (expires_at);
    CREATE TABLE agent_response_items (
        response_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        position INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (response_id, kind, position)
    );
    CREATE INDEX agent_response_items_item ON agent_response_items (item_id);
    CREATE TABLE agent_conversations (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL,
        expires_at {real},
        metadata TEXT NOT NULL
    );
    CREATE INDEX agent_conversations_expiry ON agent_conversations (expires_at);
    CREATE TABLE agent_conversation_items (
        seq {serial},
        conversation_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        body TEXT NOT NULL,
        in_memory INTEGER NOT NULL
    );
    CREATE INDEX agent_conversation_items_order ON agent_conversation_items (conversation_id, seq);
    CREATE INDEX agent_conversation_items_item ON agent_conversation_items (item_id)
    """


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "threads, stored responses and their items, conversations and their items",
        sqlite=_tables(real="REAL", serial="INTEGER PRIMARY KEY AUTOINCREMENT"),
        postgresql=_tables(
            real="DOUBLE PRECISION", serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        ),
    ),
)

_EVENTS = """
    CREATE TABLE agent_response_events (
        response_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at {real} NOT NULL,
        PRIMARY KEY (response_id, seq)
    )
"""
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        2,
        "the stored events of streamed responses",
        sqlite=_EVENTS.format(real="REAL"),
        postgresql=_EVENTS.format(real="DOUBLE PRECISION"),
    ),
)

# The chat page's list of a user's conversations, most recent first (`recent`): read from
# the index, not by sorting every conversation of every user.
_CONVERSATIONS_BY_OWNER = (
    "CREATE INDEX agent_conversations_owner_recent ON agent_conversations (owner, updated_at)"
)
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        3,
        "conversations by owner, most recently changed first",
        sqlite=_CONVERSATIONS_BY_OWNER,
        postgresql=_CONVERSATIONS_BY_OWNER,
    ),
)

# Background runs: one row per run, from `queued` to its final status, with the worker that
# runs it and when that worker last said it was alive (a run whose worker died is found by
# its stale heartbeat), and a cancel request any instance may set.
_RUNS = """
    CREATE TABLE agent_runs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        worker TEXT NOT NULL,
        created_at {real} NOT NULL,
        heartbeat_at {real} NOT NULL,
        expires_at {real},
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        body TEXT NOT NULL
    );
    CREATE INDEX agent_runs_active ON agent_runs (status, heartbeat_at);
    CREATE INDEX agent_runs_worker ON agent_runs (worker, status);
    CREATE INDEX agent_runs_expiry ON agent_runs (expires_at)
"""
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        4,
        "background runs",
        sqlite=_RUNS.format(real="REAL"),
        postgresql=_RUNS.format(real="DOUBLE PRECISION"),
    ),
)

# Resuming a background run on another worker (BACKGROUND_RESUME=checkpoint): what the run
# needs to start again without its request (`resume`, JSON; NULL: not resumable), and the
# last LangGraph checkpoint whose events are all stored (where it resumes from).
_RESUME = """
    ALTER TABLE agent_runs ADD COLUMN resume TEXT;
    ALTER TABLE agent_runs ADD COLUMN checkpoint_id TEXT
"""
MIGRATIONS = (
    *MIGRATIONS,
    Migration(5, "resumable background runs", sqlite=_RESUME, postgresql=_RESUME),
)

# The conversation thread a background run leased and the holder it leased it as (NULL: it
# leased none): a run whose worker died is ended by another worker, which must give the
# lease back, or the conversation stays locked until the lease runs out.
_RUN_LEASE = """
    ALTER TABLE agent_runs ADD COLUMN thread_id TEXT;
    ALTER TABLE agent_runs ADD COLUMN lease_holder TEXT
"""
MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        6, "the thread lease a background run holds", sqlite=_RUN_LEASE, postgresql=_RUN_LEASE
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS agent_state_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL
)
"""


async def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the schema to the newest version; returns the version now in the database."""
    latest = migrations[-1].version
    async with db.transaction() as session:
        if db.dialect == "postgresql":
            await session.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))
        await session.execute(_VERSION_TABLE)
        current = await _current_version(session)
        if current > latest:
            raise SchemaTooNew(
                f"the state store's schema is at version {current}, newer than this release "
                f"knows ({latest}); run the newer release or use another database"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            log.info("State store: applying migration %d (%s)", migration.version, migration.name)
            for statement in migration.statements(db.dialect):
                await session.execute(statement)
            await session.execute(
                "INSERT INTO agent_state_migrations (version, name) VALUES (?, ?)",
                (migration.version, migration.name),
            )
    return max(current, latest)


async def _current_version(session: Session) -> int:
    row = await session.fetch_one("SELECT MAX(version) AS version FROM agent_state_migrations")
    return int(row["version"]) if row and row["version"] is not None else 0
