"""The state store on real databases: every test runs on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from agent_service.state.config import parse_location
from agent_service.state.conversations import ConversationRepository
from agent_service.state.database import Database, PostgresDatabase, SqliteDatabase
from agent_service.state.events import StoredEvent
from agent_service.state.identity import thread_key
from agent_service.state.migrations import LATEST_VERSION, MIGRATIONS, migrate
from agent_service.state.records import NewResponse
from agent_service.state.store import StateStore, StoreOptions, StoreUnavailable, open_store
from agent_service.state.threads import ThreadBusy
from tests.state_probes import count, mentions, rows

ALICE = "key-alice"
BOB = "key-bob"


async def opened(url: str, **options: Any) -> StateStore:
    return await open_store(parse_location(url), StoreOptions(**options))


@pytest.fixture
async def store(state_url: str) -> AsyncIterator[StateStore]:
    store = await opened(state_url)
    yield store
    await store.close()


def message(text: str, role: str = "user") -> dict[str, Any]:
    kind = "input_text" if role == "user" else "output_text"
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": role,
        "status": "completed",
        "content": [{"type": kind, "text": text}],
    }


async def save(store: StateStore, owner: str, *, inputs: int = 1, text: str = "hi") -> str:
    response_id = f"resp_{uuid.uuid4().hex}"
    async with store.db.transaction() as session:
        await store.responses.save(
            NewResponse(
                id=response_id,
                owner=owner,
                body={"id": response_id, "object": "response", "status": "completed"},
                input_items=[message(f"{text} {n}") for n in range(inputs)],
                output_items=[message("hello", "assistant")],
            ),
            session,
        )
    return response_id


async def test_the_schema_is_created_once_even_when_workers_start_together(state_url: str) -> None:
    stores = await asyncio.gather(*(opened(state_url) for _ in range(4)))
    try:
        assert {store.schema_version for store in stores} == {LATEST_VERSION}
        assert await rows(
            state_url, "SELECT version FROM agent_state_migrations ORDER BY version"
        ) == [(version,) for version in range(1, LATEST_VERSION + 1)]
        assert (
            await count(
                state_url, "checkpoint_migrations" if "postgres" in state_url else "checkpoints"
            )
            >= 0
        )
    finally:
        for store in stores:
            await store.close()
    again = await opened(state_url)
    await again.close()
    assert await count(state_url, "agent_state_migrations") == LATEST_VERSION


async def test_a_schema_newer_than_this_release_is_refused(state_url: str) -> None:
    store = await opened(state_url)
    async with store.db.transaction() as session:
        await session.execute(
            "INSERT INTO agent_state_migrations (version, name) VALUES (?, ?)",
            (LATEST_VERSION + 1, "from the future"),
        )
    await store.close()
    with pytest.raises(StoreUnavailable, match="newer than this release"):
        await opened(state_url)


async def open_database(url: str) -> Database:
    """The bare database of a store, no migration run."""
    location = parse_location(url)
    if location.kind == "sqlite":
        return await SqliteDatabase.open(location.path, busy_timeout_s=10)
    return await PostgresDatabase.open(
        location.params, password=None, pool_size=2, connect_timeout_s=10
    )


async def test_a_store_of_an_earlier_release_is_migrated_with_its_data(state_url: str) -> None:
    """A database the release before this one created and used (schema version 2): opening
    it adds the conversations-by-owner index, and what it held is listed from it."""
    db = await open_database(state_url)
    try:
        assert await migrate(db, MIGRATIONS[:2]) == 2
        earlier = ConversationRepository(db, retention_s=None)
        first = await earlier.create(ALICE, {"title": "first"}, [])
        second = await earlier.create(ALICE, {"title": "second"}, [])
        await earlier.create(BOB, {"title": "bob's"}, [])
        await earlier.update(ALICE, first.id, {"title": "first, renamed"})
    finally:
        await db.close()
    store = await opened(state_url)
    try:
        assert store.schema_version == LATEST_VERSION >= 3
        recent = await store.conversations.recent(ALICE, limit=10)
        assert [(c.id, c.metadata["title"]) for c, _ in recent] == [
            (first.id, "first, renamed"),
            (second.id, "second"),
        ]
    finally:
        await store.close()
    if parse_location(state_url).kind == "sqlite":
        plan = await rows(
            state_url,
            "EXPLAIN QUERY PLAN SELECT id FROM agent_conversations WHERE owner = ?"
            " ORDER BY updated_at DESC LIMIT 100",
            ALICE,
        )
        assert "agent_conversations_owner_recent" in " ".join(str(row) for row in plan)
    else:
        indexes = await rows(
            state_url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'agent_conversations'"
        )
        assert any("(owner, updated_at)" in str(row[0]) for row in indexes), indexes


async def test_an_unreachable_database_fails_with_where_and_why_but_no_password() -> None:
    url = "postgresql://agent:s3cret-pw@127.0.0.1:1/state"
    with pytest.raises(StoreUnavailable) as failure:
        await opened(url, connect_timeout_s=2)
    message = str(failure.value)
    assert "postgresql://agent@127.0.0.1:1/state" in message
    assert "s3cret-pw" not in message
    assert "refused" in message.lower() or "connect" in message.lower()


async def test_a_stored_response_is_visible_to_its_owner_only(store: StateStore) -> None:
    response_id = await save(store, ALICE)
    stored = await store.responses.get(ALICE, response_id)
    assert stored is not None
    assert stored.body["id"] == response_id
    assert await store.responses.get(BOB, response_id) is None
    assert (
        await store.responses.input_items(BOB, response_id, after=None, limit=20, order="asc")
        is None
    )
    assert not await store.delete_response(BOB, response_id)
    assert await store.responses.get(ALICE, response_id) is not None


async def test_input_items_page_both_ways(store: StateStore) -> None:
    response_id = await save(store, ALICE, inputs=5)
    newest_first = await store.responses.input_items(
        ALICE, response_id, after=None, limit=2, order="desc"
    )
    assert newest_first is not None
    texts = [item["content"][0]["text"] for item in newest_first.items]
    assert texts == ["hi 4", "hi 3"]
    assert newest_first.has_more
    rest = await store.responses.input_items(
        ALICE, response_id, after=newest_first.items[-1]["id"], limit=10, order="desc"
    )
    assert rest is not None
    assert [item["content"][0]["text"] for item in rest.items] == ["hi 2", "hi 1", "hi 0"]
    assert not rest.has_more
    oldest_first = await store.responses.input_items(
        ALICE, response_id, after=None, limit=20, order="asc"
    )
    assert oldest_first is not None
    assert oldest_first.to_json()["first_id"] == oldest_first.items[0]["id"]
    assert oldest_first.items[0]["content"][0]["text"] == "hi 0"


async def test_deleting_a_response_removes_every_row(store: StateStore, state_url: str) -> None:
    response_id = await save(store, ALICE, text="unforgettable-phrase")
    assert await mentions(state_url, "unforgettable-phrase")
    assert await store.delete_response(ALICE, response_id)
    assert await store.responses.get(ALICE, response_id) is None
    assert await mentions(state_url, "unforgettable-phrase") == {}
    assert not await store.delete_response(ALICE, response_id)


async def test_items_are_found_by_id_for_their_owner(store: StateStore) -> None:
    response_id = await save(store, ALICE)
    page = await store.responses.input_items(ALICE, response_id, after=None, limit=20, order="asc")
    assert page is not None
    wanted = page.items[0]["id"]
    assert (await store.responses.find_items(ALICE, [wanted]))[wanted]["content"][0][
        "text"
    ] == "hi 0"
    assert await store.responses.find_items(BOB, [wanted]) == {}


async def test_conversations_keep_metadata_and_items_in_order(store: StateStore) -> None:
    conversation = await store.conversations.create(
        ALICE, {"topic": "demo"}, [message("first"), message("second")]
    )
    assert conversation.id.startswith("conv_")
    assert conversation.to_json()["object"] == "conversation"
    fetched = await store.conversations.get(ALICE, conversation.id)
    assert fetched == conversation
    assert await store.conversations.get(BOB, conversation.id) is None
    updated = await store.conversations.update(ALICE, conversation.id, {"topic": "project-x"})
    assert updated is not None
    assert updated.metadata == {"topic": "project-x"}
    assert await store.conversations.update(BOB, conversation.id, {"topic": "mine"}) is None
    page = await store.conversations.items(
        ALICE, conversation.id, after=None, limit=20, order="asc"
    )
    assert page is not None
    assert [item["content"][0]["text"] for item in page.items] == ["first", "second"]
    pending = await store.conversations.not_in_memory(conversation.id)
    assert [item["content"][0]["text"] for item in pending] == ["first", "second"]
    async with store.db.transaction() as session:
        await store.conversations.remember(session, conversation.id, [pending[0]["id"]])
        await store.conversations.append(
            session, conversation.id, [message("answer", "assistant")], in_memory=True
        )
    pending = await store.conversations.not_in_memory(conversation.id)
    assert [item["content"][0]["text"] for item in pending] == ["second"]
    newest = await store.conversations.items(
        ALICE, conversation.id, after=None, limit=1, order="desc"
    )
    assert newest is not None
    assert newest.has_more
    assert newest.items[0]["content"][0]["text"] == "answer"


async def test_deleting_a_conversation_forgets_it_and_the_agents_memory(
    store: StateStore, state_url: str
) -> None:
    conversation = await store.conversations.create(ALICE, {}, [message("secret-recipe")])
    graph = _echo_graph().compile(checkpointer=store.checkpointer)
    config: Any = {"configurable": {"thread_id": thread_key(ALICE, conversation.id)}}
    await store.threads.acquire(
        thread_key(ALICE, conversation.id),
        owner=ALICE,
        kind="conversation",
        holder="r1",
        lease_s=60,
    )
    await graph.ainvoke({"messages": [HumanMessage("secret-recipe")]}, config)
    assert set(await mentions(state_url, "secret-recipe")) >= {"agent_conversation_items"}
    assert not await store.delete_conversation(BOB, conversation.id)
    assert await store.delete_conversation(ALICE, conversation.id)
    assert await mentions(state_url, "secret-recipe") == {}
    assert await store.conversations.get(ALICE, conversation.id) is None


async def test_one_thread_runs_one_request_at_a_time(store: StateStore) -> None:
    thread = thread_key(ALICE, "chat-1")
    await store.threads.acquire(thread, owner=ALICE, kind="client", holder="req-1", lease_s=60)
    with pytest.raises(ThreadBusy):
        await store.threads.acquire(thread, owner=ALICE, kind="client", holder="req-2", lease_s=60)
    await store.threads.release(thread, "req-1")
    await store.threads.acquire(thread, owner=ALICE, kind="client", holder="req-2", lease_s=60)


async def test_a_lease_of_a_worker_that_died_runs_out(store: StateStore) -> None:
    thread = thread_key(ALICE, "chat-2")
    # A lease that has already run out: its holder never released it.
    await store.threads.acquire(thread, owner=ALICE, kind="client", holder="dead", lease_s=-1)
    await store.threads.acquire(thread, owner=ALICE, kind="client", holder="alive", lease_s=60)


async def test_retention_deletes_what_is_old_and_keeps_what_is_not(state_url: str) -> None:
    store = await opened(state_url, retention_s=3600)
    try:
        response_id = await save(store, ALICE, text="old-news")
        conversation = await store.conversations.create(ALICE, {}, [message("old-talk")])
        graph = _echo_graph().compile(checkpointer=store.checkpointer)
        thread = thread_key(ALICE, "chat-3")
        await store.threads.acquire(thread, owner=ALICE, kind="client", holder="r", lease_s=1)
        await store.threads.release(thread, "r")
        await graph.ainvoke(
            {"messages": [HumanMessage("old-thread")]}, {"configurable": {"thread_id": thread}}
        )
        assert await store.sweep(now=time.time() + 60) == 0
        assert await store.responses.get(ALICE, response_id) is not None
        assert await store.sweep(now=time.time() + 2 * 3600) == 1
        for phrase in ("old-news", "old-talk", "old-thread"):
            assert await mentions(state_url, phrase) == {}, phrase
        assert await store.conversations.get(ALICE, conversation.id) is None
    finally:
        await store.close()


async def test_langgraph_resumes_an_interrupted_thread_from_another_store(state_url: str) -> None:
    """What LangGraph users expect of a checkpointer: state, custom keys and a pending
    interrupt survive the process (here: the store is closed and opened again)."""

    class State(MessagesState):
        approvals: int

    async def ask(state: State) -> dict[str, Any]:
        answer = interrupt({"question": "approve?"})
        return {
            "messages": [AIMessage(f"approved: {answer}")],
            "approvals": state.get("approvals", 0) + 1,
        }

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    config: Any = {"configurable": {"thread_id": thread_key(ALICE, "interrupted")}}

    first = await opened(state_url)
    graph = builder.compile(checkpointer=first.checkpointer)
    result = await graph.ainvoke({"messages": [HumanMessage("deploy")], "approvals": 0}, config)
    assert result["__interrupt__"][0].value == {"question": "approve?"}
    await first.close()

    second = await opened(state_url)
    try:
        graph = builder.compile(checkpointer=second.checkpointer)
        snapshot = await graph.aget_state(config)
        assert snapshot.interrupts[0].value == {"question": "approve?"}
        result = await graph.ainvoke(Command(resume="yes"), config)
        assert result["messages"][-1].content == "approved: yes"
        assert result["approvals"] == 1
    finally:
        await second.close()


def _echo_graph() -> StateGraph[MessagesState, None, MessagesState, MessagesState]:
    async def echo(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"echo: {state['messages'][-1].content}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("echo", echo)
    builder.add_edge(START, "echo")
    return builder


async def _fail_event_writes(store: StateStore) -> None:
    """The database refuses the next event writes (a full disk, a lost connection)."""
    if store.db.dialect == "sqlite":
        await store.db.execute(
            "CREATE TRIGGER no_events BEFORE INSERT ON agent_response_events"
            " BEGIN SELECT RAISE(ABORT, 'no room'); END"
        )
        return
    await store.db.execute(
        "CREATE FUNCTION no_room() RETURNS trigger AS $$"
        " BEGIN RAISE EXCEPTION 'no room'; END $$ LANGUAGE plpgsql"
    )
    await store.db.execute(
        "CREATE TRIGGER no_events BEFORE INSERT ON agent_response_events"
        " FOR EACH ROW EXECUTE FUNCTION no_room()"
    )


async def test_a_runs_events_and_response_are_stored_together_or_not_at_all(
    store: StateStore,
) -> None:
    run_id = f"resp_{uuid.uuid4().hex}"
    queued = {"id": run_id, "status": "queued", "output": []}
    await store.runs.create(run_id, ALICE, "worker-1", queued)
    event = StoredEvent(0, "response.created", '{"type":"response.created"}')
    answered = {"id": run_id, "status": "completed", "output": [message("hi", "assistant")]}
    await _fail_event_writes(store)
    with pytest.raises(Exception, match="no room"):
        await store.store_run(run_id, [event], answered)
    # Neither: the run is as it was, so that its stream and its response still agree.
    run = await store.runs.get(ALICE, run_id)
    assert run is not None
    assert (run.status, dict(run.body)) == ("queued", queued)
    assert await store.events.after(run_id, -1) == []
    await store.db.execute(
        "DROP TRIGGER no_events"
        + (" ON agent_response_events" if store.db.dialect == "postgresql" else "")
    )
    assert await store.store_run(run_id, [event], answered)
    run = await store.runs.get(ALICE, run_id)
    assert run is not None
    assert (run.status, dict(run.body)) == ("completed", answered)
    assert await store.events.after(run_id, -1) == [event]
    # An ended run takes nothing more.
    later = StoredEvent(1, "response.output_text.delta", "{}")
    assert not await store.store_run(run_id, [later], {**answered, "status": "in_progress"})
    assert await store.events.after(run_id, -1) == [event]
