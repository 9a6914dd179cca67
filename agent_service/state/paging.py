"""Cursor paging of ordered items, as OpenAI's list endpoints do it (`after`, `limit`, `order`)."""

from __future__ import annotations

from agent_service.state.database import Row, Session
from agent_service.state.records import ItemPage, Order
from agent_service.state.serde import loads

MAX_PAGE = 100
DEFAULT_PAGE = 20


async def page_of(
    session: Session,
    *,
    table: str,
    scope: str,
    scope_value: str,
    position: str,
    after: str | None,
    limit: int,
    order: Order,
    extra_where: str = "",
    extra_params: tuple[object, ...] = (),
) -> ItemPage | None:
    """Items of one scope (a response's input, a conversation) ordered by `position`.
    None when `after` names no item of that scope."""
    where = f"{scope} = ?{extra_where}"
    params: list[object] = [scope_value, *extra_params]
    if after is not None:
        anchor = await session.fetch_one(
            f"SELECT {position} AS position FROM {table} WHERE {where} AND item_id = ?",
            (*params, after),
        )
        if anchor is None:
            return None
        where += f" AND {position} {'>' if order == 'asc' else '<'} ?"
        params.append(anchor["position"])
    direction = "ASC" if order == "asc" else "DESC"
    rows: list[Row] = await session.fetch_all(
        f"SELECT body FROM {table} WHERE {where} ORDER BY {position} {direction} LIMIT ?",
        (*params, limit + 1),
    )
    items = [loads(row["body"]) for row in rows[:limit]]
    return ItemPage(items, has_more=len(rows) > limit)
