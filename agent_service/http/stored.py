"""What the server keeps, as OpenAI's API exposes it: stored responses and their input
items, and the Conversations API. Everything is the caller's own: another caller's id is
not found (404), never shown.

    GET    /v1/responses/{id}                       the response; with stream=true, its
                                                    stream again (after starting_after, or
                                                    the Last-Event-ID header)
    POST   /v1/responses/{id}/cancel                stops a background run (http/background.py)
    DELETE /v1/responses/{id}                       deletes it (and the agent's memory of
                                                    it, once no response uses that any more)
    GET    /v1/responses/{id}/input_items           its input items, paged
    POST   /v1/conversations                        create (metadata, up to 20 items)
    GET    /v1/conversations/{id}                   retrieve
    POST   /v1/conversations/{id}                   update the metadata
    DELETE /v1/conversations/{id}                   delete, with its items and memory
    GET    /v1/conversations/{id}/items             list items, paged
    POST   /v1/conversations/{id}/items             add up to 20 items
    GET    /v1/conversations/{id}/items/{item_id}   one item

The same response routes are served under /responses (MLflow's path) too, and the
retrieve at /retrieve/{id} (Databricks' LongRunningAgentServer), so that a client of that
server reaches background runs started through /invocations.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_service import errors
from agent_service.http.background import cancel_response, follow, settle
from agent_service.http.sse import NAMED_EVENTS, SSE_HEADERS
from agent_service.http.state import caller
from agent_service.http.validation import read_valid_body
from agent_service.jsonio import dumps
from agent_service.keys import RUNS, STATE
from agent_service.protocols.base import Frame
from agent_service.state.events import StoredEvent
from agent_service.state.paging import DEFAULT_PAGE, MAX_PAGE
from agent_service.state.records import Item, ItemPage, Order
from agent_service.state.serde import loads
from agent_service.state.store import StateStore
from agent_service.state.turns import StateDisabled, resolve_references, stored_item


def setup_stored_routes(app: web.Application) -> None:
    for prefix in ("/v1/responses", "/responses"):
        app.router.add_get(prefix + "/{response_id}", get_response)
        app.router.add_delete(prefix + "/{response_id}", delete_response)
        app.router.add_get(prefix + "/{response_id}/input_items", response_input_items)
        app.router.add_post(prefix + "/{response_id}/cancel", cancel_response)
    # Databricks' LongRunningAgentServer also serves the retrieve at /retrieve/{id}.
    app.router.add_get("/retrieve/{response_id}", get_response)
    app.router.add_post("/v1/conversations", create_conversation)
    app.router.add_get("/v1/conversations/{conversation_id}", get_conversation)
    app.router.add_post("/v1/conversations/{conversation_id}", update_conversation)
    app.router.add_delete("/v1/conversations/{conversation_id}", delete_conversation)
    app.router.add_get("/v1/conversations/{conversation_id}/items", conversation_items)
    app.router.add_post("/v1/conversations/{conversation_id}/items", add_conversation_items)
    app.router.add_get("/v1/conversations/{conversation_id}/items/{item_id}", conversation_item)


def _json(body: Any) -> web.Response:
    return web.Response(body=dumps(body), content_type="application/json")


def _store(request: web.Request, *, writing: bool = False) -> StateStore | None:
    store = request.app[STATE].store
    if store is None and writing:
        raise StateDisabled()
    return store


def _response_not_found(response_id: str) -> errors.NotFound:
    return errors.NotFound(f"Response with id '{response_id}' not found.", param="response_id")


def _conversation_not_found(conversation_id: str) -> errors.NotFound:
    return errors.NotFound(
        f"Conversation with id '{conversation_id}' not found.", param="conversation_id"
    )


async def get_response(request: web.Request) -> web.StreamResponse:
    response_id = request.match_info["response_id"]
    streamed = request.query.get("stream", "").lower() == "true"
    after = _starting_after(request) if streamed else -1
    store = _store(request)
    owner = caller(request)
    run = await store.runs.get(owner, response_id) if store else None
    if store is not None and run is not None and run.active:
        alive = request.app[RUNS].local.get(response_id) is not None
        if alive or not await settle(request.app, store, response_id):
            if streamed:
                return await follow(request, store, response_id, after)
            # Another worker's run: as it last stored it (at most a flush behind).
            fresh = await store.runs.get(owner, response_id)
            return _json((fresh or run).body)
        run = await store.runs.get(owner, response_id)
    stored = await store.responses.get(owner, response_id) if store else None
    if store is None or (stored is None and run is None):
        raise _response_not_found(response_id)
    if not streamed:
        # A background run that did not complete has no stored response: its run has it.
        return _json(stored.body if stored is not None else run.body)  # type: ignore[union-attr]
    events = await store.events.after(response_id, after)
    if not events and after < 0:
        raise errors.InvalidBody(
            f"Response '{response_id}' was answered as JSON, not streamed: there is no stream "
            "to read again; retrieve it without stream=true.",
            param="stream",
        )
    return await _replay(request, events)


async def _replay(request: web.Request, events: list[StoredEvent]) -> web.StreamResponse:
    """The stored events, framed as they were sent (`event:`, `id:`, `data:`)."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    frames = [Frame(loads(stored.payload), stored.event) for stored in events]
    await response.write(NAMED_EVENTS.encode(frames))
    await response.write_eof()
    return response


def _starting_after(request: web.Request) -> int:
    """Where a resumed stream starts: `starting_after`, else the Last-Event-ID header (the
    sequence number of the last event the client has), else the beginning."""
    raw = request.query.get("starting_after") or request.headers.get("Last-Event-ID") or "-1"
    try:
        return int(raw)
    except ValueError:
        raise errors.InvalidBody(
            f"starting_after must be an event's sequence number, not {raw[:20]!r}.",
            param="starting_after",
        ) from None


async def delete_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    store = _store(request)
    if store is None or not await store.delete_response(caller(request), response_id):
        raise _response_not_found(response_id)
    # The shape of OpenAI's API reference example for this route.
    return _json({"id": response_id, "object": "response", "deleted": True})


async def response_input_items(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    after, limit, order = _paging(request)
    store = _store(request)
    page = (
        await store.responses.input_items(
            caller(request), response_id, after=after, limit=limit, order=order
        )
        if store
        else None
    )
    if page is None:
        if store and after and await store.responses.get(caller(request), response_id):
            raise _unknown_after(after)
        raise _response_not_found(response_id)
    return _json(page.to_json())


async def create_conversation(request: web.Request) -> web.Response:
    body = await read_valid_body(request, "conversation-create.request")
    store = _store(request, writing=True)
    assert store is not None
    owner = caller(request)
    items = await _items(store, owner, body.get("items") or [])
    conversation = await store.conversations.create(owner, body.get("metadata") or {}, items)
    return _json(conversation.to_json())


async def get_conversation(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    store = _store(request)
    found = await store.conversations.get(caller(request), conversation_id) if store else None
    if found is None:
        raise _conversation_not_found(conversation_id)
    return _json(found.to_json())


async def update_conversation(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    body = await read_valid_body(request, "conversation-update.request")
    store = _store(request)
    updated = (
        await store.conversations.update(caller(request), conversation_id, body["metadata"] or {})
        if store
        else None
    )
    if updated is None:
        raise _conversation_not_found(conversation_id)
    return _json(updated.to_json())


async def delete_conversation(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    store = _store(request)
    if store is None or not await store.delete_conversation(caller(request), conversation_id):
        raise _conversation_not_found(conversation_id)
    return _json({"id": conversation_id, "object": "conversation.deleted", "deleted": True})


async def conversation_items(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    after, limit, order = _paging(request)
    store = _store(request)
    owner = caller(request)
    page: ItemPage | None = None
    if store is not None:
        page = await store.conversations.items(
            owner, conversation_id, after=after, limit=limit, order=order
        )
    if page is None:
        if store and after and await store.conversations.get(owner, conversation_id):
            raise _unknown_after(after)
        raise _conversation_not_found(conversation_id)
    return _json(page.to_json())


async def add_conversation_items(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    body = await read_valid_body(request, "conversation-items.request")
    store = _store(request)
    owner = caller(request)
    if store is None or await store.conversations.get(owner, conversation_id) is None:
        raise _conversation_not_found(conversation_id)
    items = await _items(store, owner, body["items"])
    async with store.db.transaction() as session:
        await store.conversations.append(session, conversation_id, items, in_memory=False)
    return _json(ItemPage(items).to_json())


async def conversation_item(request: web.Request) -> web.Response:
    conversation_id = request.match_info["conversation_id"]
    item_id = request.match_info["item_id"]
    store = _store(request)
    owner = caller(request)
    if store is None or await store.conversations.get(owner, conversation_id) is None:
        raise _conversation_not_found(conversation_id)
    found = await store.conversations.item(conversation_id, item_id)
    if found is None:
        raise errors.NotFound(f"Item with id '{item_id}' not found.", param="item_id")
    return _json(found)


async def _items(store: StateStore, owner: str, items: list[dict[str, Any]]) -> list[Item]:
    """Items as a conversation keeps them: references resolved, ids given, content as parts."""
    resolved = await resolve_references(store, owner, items, path="$.items")
    return [stored_item(item) for item in resolved]


def _paging(request: web.Request) -> tuple[str | None, int, Order]:
    """OpenAI's list parameters: `after` (an item id), `limit` (1-100, default 20), `order`
    (`desc` by default)."""
    query = request.query
    raw_limit = query.get("limit", str(DEFAULT_PAGE))
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise errors.InvalidBody(
            f"limit must be an integer from 1 to {MAX_PAGE}, not {raw_limit[:20]!r}.",
            param="limit",
        )
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.InvalidBody("order must be 'asc' or 'desc'.", param="order")
    return query.get("after") or None, limit, "asc" if order == "asc" else "desc"


def _unknown_after(after: str) -> errors.InvalidBody:
    return errors.InvalidBody(f"No item with id '{after[:80]}' to list after.", param="after")
