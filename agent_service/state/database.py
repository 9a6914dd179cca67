"""One small interface over the two databases the store runs on: SQLite and PostgreSQL.

Queries are written once with `?` placeholders (SQLite's); the PostgreSQL side rewrites them
to psycopg's `%s`. Rows come back as plain dicts. Writes that belong together run in
`transaction()`, which takes SQLite's write lock at BEGIN (`BEGIN IMMEDIATE`) so that a
second process waits for it (busy timeout) instead of failing later with "database is
locked" when a read tries to become a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import aiosqlite
from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

Dialect = Literal["sqlite", "postgresql"]
Row = dict[str, Any]
Params = Sequence[Any]
# A PostgreSQL password source: a fixed password is in the parameters, Lakebase's comes
# from a callable that mints (or reuses) an OAuth token when a connection is opened.
PasswordSource = Callable[[], Awaitable[str]]


class Session(Protocol):
    """Queries inside one transaction (or, on the database itself, each in its own)."""

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None: ...


class Database(Session, Protocol):
    dialect: Dialect

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Session]: ...

    async def close(self) -> None: ...


# --- SQLite -------------------------------------------------------------------------------


class SqliteDatabase:
    """One aiosqlite connection per worker; a lock keeps one coroutine's transaction from
    interleaving with another's statements on the shared connection."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, *, busy_timeout_s: float) -> SqliteDatabase:
        conn = await open_sqlite(path, busy_timeout_s=busy_timeout_s)
        return cls(conn)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._lock:
            return await _sqlite_fetch_all(self._conn, sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._lock:
            cursor = await self._conn.execute(sql, params)
            return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as session:
            await session.execute_many(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteSession(self._conn)
            except BaseException:
                # Shielded: a cancelled request must still leave the connection usable.
                await asyncio.shield(self._conn.execute("ROLLBACK"))
                raise
            await asyncio.shield(self._conn.execute("COMMIT"))

    async def close(self) -> None:
        await self._conn.close()


async def open_sqlite(
    path: str, *, busy_timeout_s: float, autocommit: bool = True
) -> aiosqlite.Connection:
    """A connection with the WAL journal (readers never wait for the writer),
    synchronous=NORMAL (WAL's safe setting: a power cut may lose the last commits, never
    corrupt the file) and a busy timeout for the other processes. Ours is in autocommit mode
    (we say BEGIN ourselves); LangGraph's checkpointer commits its own statements."""
    isolation_level = None if autocommit else "DEFERRED"
    conn = await aiosqlite.connect(path, timeout=busy_timeout_s, isolation_level=isolation_level)
    conn.row_factory = aiosqlite.Row
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class _SqliteSession:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await _sqlite_fetch_all(self._conn, sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)


async def _sqlite_fetch_all(conn: aiosqlite.Connection, sql: str, params: Params) -> list[Row]:
    async with conn.execute(sql, params) as cursor:
        return [dict(row) for row in await cursor.fetchall()]


# --- PostgreSQL ---------------------------------------------------------------------------


class PostgresDatabase:
    """A psycopg connection pool per worker. Connections are in autocommit mode (as
    LangGraph's PostgreSQL checkpointer, which shares the pool, requires); `transaction()`
    opens an explicit one."""

    dialect: Dialect = "postgresql"

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[DictRow]]) -> None:
        self.pool = pool

    @classmethod
    async def open(
        cls,
        params: Mapping[str, str],
        *,
        password: PasswordSource | None,
        pool_size: int,
        connect_timeout_s: float,
    ) -> PostgresDatabase:
        conninfo = make_conninfo(**params)

        async def connection_kwargs() -> dict[str, Any]:
            kwargs: dict[str, Any] = {
                "autocommit": True,
                # No server-side prepared statements: they break behind PgBouncer-style
                # poolers, and the checkpointer's docs ask for it.
                "prepare_threshold": 0,
                "row_factory": dict_row,
            }
            if password is not None:
                kwargs["password"] = await password()
            return kwargs

        # One connection first, outside the pool: its error says why the database cannot be
        # reached (the pool would only say that it timed out).
        probe = await AsyncConnection.connect(
            conninfo, connect_timeout=max(1, round(connect_timeout_s)), **await connection_kwargs()
        )
        await probe.close()
        pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
            conninfo,
            kwargs=connection_kwargs,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=connect_timeout_s,
            name="agent-state",
        )
        await pool.open(wait=True, timeout=connect_timeout_s)
        return cls(pool)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.pool.connection() as conn:
            return await _PostgresSession(conn).fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        async with self.pool.connection() as conn:
            return await _PostgresSession(conn).fetch_one(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.pool.connection() as conn:
            return await _PostgresSession(conn).execute(sql, params)

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        async with self.transaction() as session:
            await session.execute_many(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        async with self.pool.connection() as conn, conn.transaction():
            yield _PostgresSession(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[DictRow]]:
        """A connection of its own, for session-level work (advisory locks, LISTEN)."""
        async with self.pool.connection() as conn:
            yield conn

    async def close(self) -> None:
        await self.pool.close()


class _PostgresSession:
    def __init__(self, conn: AsyncConnection[DictRow]) -> None:
        self._conn = conn

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self._conn.execute(_pg(sql), params)
        return [dict(row) for row in await cursor.fetchall()]

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        cursor = await self._conn.execute(_pg(sql), params)
        row = await cursor.fetchone()
        return dict(row) if row is not None else None

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(_pg(sql), params)
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._conn.cursor() as cursor:
            await cursor.executemany(_pg(sql), list(rows))


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """SQLite placeholders → psycopg's. Our SQL has no literal `?` or `%`."""
    return sql.replace("?", "%s")
