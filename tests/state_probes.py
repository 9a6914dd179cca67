"""Looks into a state store's database directly, with the plain drivers: what a test says is
deleted must be gone from the tables themselves."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import psycopg

from agent_service.state.config import parse_location


def _query(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    location = parse_location(url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            return list(conn.execute(sql, params).fetchall())
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql.replace("?", "%s"), params).fetchall())


async def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await asyncio.to_thread(_query, url, sql, params)


async def count(url: str, table: str, where: str = "1 = 1", *params: Any) -> int:
    found = await rows(url, f"SELECT COUNT(*) FROM {table} WHERE {where}", *params)
    return int(found[0][0])


async def mentions(url: str, needle: str) -> dict[str, int]:
    """Rows of every state and checkpoint table whose text contains `needle` (by table)."""
    location = parse_location(url)
    if location.kind == "sqlite":
        tables = [
            row[0]
            for row in await rows(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        ]
    else:
        tables = [
            row[0]
            for row in await rows(
                url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
    found: dict[str, int] = {}
    for table in tables:
        columns = await _columns(url, table)
        if location.kind == "sqlite":
            condition = " OR ".join(f"instr(CAST({name} AS BLOB), ?) > 0" for name, _ in columns)
            params: tuple[Any, ...] = tuple(needle.encode() for _ in columns)
        else:
            condition = " OR ".join(
                f"position(? in {name})> 0"
                if binary
                else f"position(? in CAST({name} AS TEXT)) > 0"
                for name, binary in columns
            )
            params = tuple(needle.encode() if binary else needle for _, binary in columns)
        if condition and (hits := await count(url, table, condition, *params)):
            found[table] = hits
    return found


async def _columns(url: str, table: str) -> list[tuple[str, bool]]:
    """The columns that can hold text: (name, holds bytes)."""
    location = parse_location(url)
    if location.kind == "sqlite":
        info = await rows(url, f"PRAGMA table_info({table})")
        return [(str(row[1]), False) for row in info]
    info = await rows(
        url,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?"
        " AND data_type IN ('text', 'bytea', 'jsonb', 'character varying')",
        table,
    )
    return [(str(row[0]), row[1] == "bytea") for row in info]
