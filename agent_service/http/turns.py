"""A request's conversation state, around its run: which thread it joins before, what is
kept after. Stateless requests (no ids, `store: false`) pass through untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agent_service import errors
from agent_service.events import Event, RunEnded, ThreadSaved
from agent_service.http.state import caller
from agent_service.keys import REQUEST_ID, SETTINGS, STATE, THREAD_NAME
from agent_service.protocols.base import Exchange, Reducer
from agent_service.protocols.registry import TaskName
from agent_service.protocols.responses import ResponsesExchange
from agent_service.run import ThreadRef
from agent_service.state.events import EventRecorder
from agent_service.state.identity import thread_key
from agent_service.state.store import StateStore
from agent_service.state.thread_names import client_thread
from agent_service.state.threads import ThreadBusy
from agent_service.state.turns import (
    ResponsesTurn,
    ThreadPlan,
    finish_responses_turn,
    prepare_responses_turn,
)

RESPONSES: TaskName = "agent/v1/responses"
# A lease outlives the request deadline by this much: a worker that died mid-run holds the
# thread no longer than the deadline plus this.
_LEASE_MARGIN_S = 60.0
# Without a request deadline, a lease still runs out (a dead worker must not hold a thread
# for ever); a live run longer than this loses the guarantee that no other turn interleaves.
_LEASE_WITHOUT_DEADLINE_S = 3600.0


@dataclass(slots=True)
class TurnPlan:
    body: dict[str, Any]
    owner: str
    thread: ThreadRef | None = None
    responses: ResponsesTurn | None = None
    # The thread whose lease this request holds (released when it ends), and its head
    # when the lease was taken.
    leased: str | None = None
    head: str | None = None
    # The checkpoint the run ended on, once it completed.
    saved: str | None = None

    @property
    def stateless(self) -> bool:
        return self.thread is None and (self.responses is None or not self.keeps_anything)

    @property
    def keeps_anything(self) -> bool:
        turn = self.responses
        return turn is not None and (turn.store or turn.conversation_id is not None)


async def plan_turn(request: web.Request, task: TaskName, body: dict[str, Any]) -> TurnPlan:
    """Resolve the request's ids against the store and join its thread (taking the thread's
    lease when the run continues from its latest checkpoint)."""
    store = request.app[STATE].store
    owner = caller(request)
    if task == RESPONSES:
        turn = await prepare_responses_turn(store, owner, body)
        plan = TurnPlan(turn.body, owner, responses=turn)
        thread, seed = turn.thread, turn.seed_from
    else:
        named = client_thread(body) if store is not None else None
        if named is None:
            return TurnPlan(body, owner)
        plan = TurnPlan(body, owner)
        thread = ThreadPlan(
            thread_key(owner, named.name),
            "client",
            named.name,
            needs_lease=True,
            resends_history=True,
        )
        seed = None
    if store is None or (thread is None and seed is None):
        return plan
    if thread is not None:
        await _join(request, store, plan, thread)
        if thread.kind == "client":
            request[THREAD_NAME] = thread.name
    checkpoint_id = thread.checkpoint_id if thread else None
    plan.thread = ThreadRef(
        thread_id=thread.thread_id if thread else None,
        checkpoint_id=plan.head if plan.leased else checkpoint_id,
        resends_history=thread.resends_history if thread else False,
        seed_thread_id=seed.thread_id if seed else None,
        seed_checkpoint_id=seed.checkpoint_id if seed else None,
        client_name=thread.name if thread and thread.kind == "client" else None,
    )
    return plan


async def _join(
    request: web.Request, store: StateStore, plan: TurnPlan, thread: ThreadPlan
) -> None:
    if not thread.needs_lease:
        await store.threads.touch(thread.thread_id, owner=plan.owner, kind=thread.kind)
        return
    deadline = request.app[SETTINGS].request_deadline_s
    lease_s = deadline + _LEASE_MARGIN_S if deadline else _LEASE_WITHOUT_DEADLINE_S
    try:
        plan.head = await store.threads.acquire(
            thread.thread_id,
            owner=plan.owner,
            kind=thread.kind,
            holder=request[REQUEST_ID],
            lease_s=lease_s,
        )
    except ThreadBusy:
        raise errors.Conflict(
            "Another request is running in this conversation; retry when it has finished.",
            code="conversation_locked",
            headers={"Retry-After": "1"},
        ) from None
    plan.leased = thread.thread_id
    if plan.head is None:
        # No turn of this thread completed: any checkpoint in it was left by a turn whose
        # worker died mid-run (per-step checkpoints of a resumable background run, reaped
        # without resume). A failed turn is never continued: the new one starts empty.
        await store.checkpointer.adelete_thread(thread.thread_id)


async def end_turn(request: web.Request, plan: TurnPlan) -> None:
    """Release the thread, however the request ended: a completed turn moves the thread's
    head to its checkpoint; a failed first turn leaves nothing behind."""
    await end_turn_in(request.app[STATE].store, request[REQUEST_ID], plan)


async def end_turn_in(store: StateStore | None, holder: str, plan: TurnPlan) -> None:
    """`end_turn` for a run without its request (one resumed on another worker)."""
    if plan.leased is None or store is None:
        return
    thread_id, plan.leased = plan.leased, None
    if plan.saved is None and plan.head is None:
        await store.checkpointer.adelete_thread(thread_id)
    await store.threads.release(thread_id, holder, head=plan.saved)


async def keep(
    store: StateStore | None,
    plan: TurnPlan,
    response: Mapping[str, Any],
    checkpoint_id: str | None,
) -> None:
    """Save what a completed Responses turn produced (the response, conversation items)."""
    if store is None or plan.responses is None or not plan.keeps_anything:
        return
    await finish_responses_turn(
        store, plan.owner, plan.responses, response, checkpoint_id=checkpoint_id
    )


def remembering(
    request: web.Request, plan: TurnPlan, exchange: Exchange, events: AsyncIterator[Event]
) -> AsyncIterator[Event]:
    return remembering_in(request.app[STATE].store, plan, exchange, events)


async def remembering_in(
    store: StateStore | None,
    plan: TurnPlan,
    exchange: Exchange,
    events: AsyncIterator[Event],
    *,
    reducer: Reducer | None = None,
) -> AsyncIterator[Event]:
    """The run's events, unchanged. The turn is kept before the final event goes out, so a
    client that sees `response.completed` can continue from that response at once.
    `reducer`: one that already holds the output of the run's earlier part (a resumed run)."""
    if plan.responses is None or not plan.keeps_anything:
        reducer = None
    elif reducer is None:
        reducer = exchange.reducer()
    checkpoint_id = None
    try:
        async for event in events:
            if reducer is not None:
                reducer.add(event)
            if isinstance(event, ThreadSaved):
                checkpoint_id = event.checkpoint_id
            elif isinstance(event, RunEnded):
                if reducer is not None:
                    await keep(store, plan, reducer.result(), checkpoint_id)
                plan.saved = checkpoint_id
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def recorder_for(request: web.Request, plan: TurnPlan, exchange: Exchange) -> EventRecorder | None:
    """A stored response's stream is kept, for clients that come back for it."""
    store = request.app[STATE].store
    turn = plan.responses
    if store is None or turn is None or not turn.store:
        return None
    if not isinstance(exchange, ResponsesExchange):
        return None
    return EventRecorder(store.events, exchange.response_id)
