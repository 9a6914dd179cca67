"""Background runs (`background: true`): a Responses run that goes on without its client.

    POST /v1/responses {"background": true, ...}   → the response at once, status `queued`
    GET  /v1/responses/{id}                        → the response as it stands (polling)
    GET  /v1/responses/{id}?stream=true            → its events from the start (or after
         &starting_after=N / Last-Event-ID            N), then the live ones to the end
    POST /v1/responses/{id}/cancel                 → stops it; status `cancelled`

The run is the same loop as a streamed answer (`deliver`) with a sink that stores instead of
sending: its events go to the store in batches (RECORD_BATCH, or every FLUSH_S when the run
is slow), its row in `agent_runs` carries the response as it stands.

Each worker beats for its runs every BACKGROUND_HEARTBEAT_SECONDS; the same tick picks up
cancels asked through other instances and ends `failed` every run whose worker stopped
beating for BACKGROUND_STALE_SECONDS (it died: SIGKILL, OOM, a lost machine) — on whichever
instance notices first. It ends, with a reason — or, with BACKGROUND_RESUME=checkpoint and a
LangGraph graph agent in a thread, one live worker claims it (a conditional update of its
row: exactly one wins) and goes on from the last step the graph checkpointed, continuing the
same stored stream (`adopt`). A worker stopping (SIGTERM) hands such runs back at the end
of its drain instead of ending them.

A stream of a run held by this worker follows it in memory (each event at once); a run held
by another worker or instance is followed by reading the store every
BACKGROUND_POLL_SECONDS (both databases alike; LISTEN/NOTIFY would only save that delay on
PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agent_service import errors
from agent_service.agents.base import Agent
from agent_service.agents.graph_runner import GraphAgent
from agent_service.events import Event, RunEnded, RunFailed, StepSaved
from agent_service.http.admission import RunScope
from agent_service.http.answer import deliver
from agent_service.http.observer import RunObserver
from agent_service.http.resume_record import plan_of, record, resumable
from agent_service.http.routes import INVOCATIONS
from agent_service.http.sse import NAMED_EVENTS, PING, SSE_HEADERS
from agent_service.http.state import caller
from agent_service.http.turns import (
    RESPONSES,
    TurnPlan,
    end_turn_in,
    plan_turn,
    remembering_in,
)
from agent_service.jsonio import dumps, encodable
from agent_service.keys import (
    AGENT,
    BODY,
    ENDPOINT,
    GATE,
    METRICS,
    REQUEST_ID,
    RUNS,
    SETTINGS,
    STATE,
    USER_TOKEN,
)
from agent_service.observability.request_trace import RequestFacts
from agent_service.protocols.base import Exchange, Frame, RequestContext, TraceReturn
from agent_service.protocols.responses import (
    ResponsesExchange,
    ResponsesReducer,
    ResponsesTask,
    abandoned,
)
from agent_service.state import serde
from agent_service.state.events import RECORD_BATCH, StoredEvent
from agent_service.state.runs import ACTIVE, IN_PROGRESS, QUEUED, Resumable
from agent_service.state.store import StateStore
from agent_service.state.threads import ThreadBusy

log = logging.getLogger(__name__)

# A slow run's events reach the store (and streams on other instances) this soon.
FLUSH_S = 0.1
# How long a cancel waits for the run to end before answering with its status then.
_CANCEL_WAIT_S = 10.0
_CANCEL_NUDGE_S = 0.5
# A resumed run holds its conversation's lease this long (as a request without a deadline).
_LEASE_S = 3600.0
WORKER_LOST = (
    "The worker running this response stopped before it finished (worker_lost); start it again."
)
STOPPED = "The server stopped before this response finished (shutdown); start it again."


@dataclass(frozen=True, slots=True)
class PreparedRun:
    agent: Agent
    exchange: Exchange
    observer: RunObserver


@dataclass(eq=False)
class RunHandle:
    """A background run held by this worker: its events so far, in memory, for streams."""

    response_id: str
    # The sequence number of events[0]: a resumed run holds only the events it added.
    base: int = 0
    events: list[StoredEvent] = field(default_factory=list)
    flushed: int = 0
    done: bool = False
    scope: RunScope | None = None
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cancel_asked: bool = False
    # Another worker may go on with it (BACKGROUND_RESUME=checkpoint, a graph in a thread);
    # the checkpoint it would go on from once its events up to there are stored.
    resumable: bool = False
    checkpoint: str | None = None
    # The worker stops: the run is left for another one to take, not ended.
    handing_back: bool = False

    def add(self, events: Sequence[StoredEvent]) -> None:
        self.events.extend(events)
        self._notify()

    def end(self) -> None:
        self.done = True
        self._notify()

    def after(self, sequence: int) -> list[StoredEvent]:
        # Sequence numbers count without gaps: event n is at index n - base.
        return self.events[max(sequence + 1 - self.base, 0) :]

    def cancel(self) -> None:
        self.cancel_asked = True
        if self.scope is not None:
            self.scope.cancel()

    def _notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class BackgroundRuns:
    """This worker's background runs, and the tick that keeps them honest in the store."""

    def __init__(self) -> None:
        # Unique per worker and per app: two apps in one process are two workers.
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.local: dict[str, RunHandle] = {}

    async def flush(
        self,
        store: StateStore,
        handle: RunHandle,
        body: dict[str, Any],
        checkpoint: str | None = None,
    ) -> bool:
        """Write the events not yet stored with the response as it stands (and the step
        checkpoint those events reach, for a resumable run), in one transaction. False when
        the run's row says it already ended (deleted, or reaped): nothing more is stored."""
        async with handle.flush_lock:
            pending = handle.events[handle.flushed :]
            active = await store.store_run(handle.response_id, pending, body, checkpoint)
            handle.flushed += len(pending)
            return active

    async def tick(
        self,
        store: StateStore,
        stale_s: float,
        adopt: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """Beat for this worker's runs, cancel those cancelled elsewhere; the dead's are
        taken over (`adopt`, when resuming is on and this worker has room) or ended."""
        for response_id in await store.runs.beat(self.worker):
            handle = self.local.get(response_id)
            if handle is not None and not handle.cancel_asked:
                handle.cancel()
        for response_id in await store.runs.stale(time.time() - stale_s):
            if adopt is not None and await adopt(response_id):
                continue
            await reap(store, response_id, stale_s)


async def settle(app: web.Application, store: StateStore, response_id: str) -> bool:
    """A run whose worker may have died: taken over here (BACKGROUND_RESUME=checkpoint, a
    resumable run) or ended `failed`. True when it ended; False when it is alive (its
    worker beats, or this worker now runs it)."""
    settings = app[SETTINGS]
    if settings.background_resume == "checkpoint" and await adopt(app, response_id):
        return False
    return await reap(store, response_id, settings.background_stale_s)


async def reap(store: StateStore, response_id: str, stale_s: float) -> bool:
    """End a run whose worker stopped beating: `failed`, worker_lost."""

    def ending(body: Any, sequence: int) -> tuple[dict[str, Any], list[StoredEvent]]:
        final, frames = abandoned(body, sequence, WORKER_LOST)
        return final, _stored(frames)

    ended = await store.end_abandoned_run(
        response_id, stale_before=time.time() - stale_s, ending=ending
    )
    if ended:
        log.warning("Background run %s ended failed: its worker stopped (worker_lost)", response_id)
    return ended


def _stored(frames: Sequence[Frame]) -> list[StoredEvent]:
    return [
        StoredEvent(int(f.payload["sequence_number"]), f.event or "", serde.dumps(f.payload))
        for f in frames
    ]


class StoreSink:
    """The events of a background run → the protocol's frames → memory and the store."""

    started = True  # failures are the run's ending, in-band, like a stream's

    def __init__(
        self,
        runs: BackgroundRuns,
        store: StateStore,
        handle: RunHandle,
        exchange: ResponsesExchange,
        observer: RunObserver,
    ) -> None:
        self._runs = runs
        self._store = store
        self._handle = handle
        self._encoder = exchange.encoder()
        self._observer = observer

    def snapshot(self) -> dict[str, Any]:
        return self._encoder.snapshot()

    async def take(self, event: Event) -> None:
        if isinstance(event, StepSaved):
            # The graph saved a step: once every event so far is stored, the run can be
            # resumed from there (nothing the step produced is lost or sent twice).
            if self._handle.resumable:
                self._handle.checkpoint = event.checkpoint_id
                await self.store(checkpoint=event.checkpoint_id)
            return
        await self._record(self._encoder.encode(event), final=isinstance(event, RunEnded))

    def go_on_from(self, response: dict[str, Any], sequence: int) -> None:
        """A resumed run: the stored stream goes on (its open items closed)."""
        self._handle.add(_stored(self._encoder.go_on_from(response, sequence)))

    async def fail(self, error: errors.ServiceError) -> None:
        if isinstance(error, errors.ServerShuttingDown) and self._handle.resumable:
            # The drain ran out: another worker goes on with the run (see `_run`).
            self._handle.handing_back = True
            return
        if isinstance(error, errors.RunCancelled):
            frames = self._encoder.cancelled()
        else:
            frames = [
                Frame(encodable(f.payload), f.event) for f in self._encoder.encode(RunFailed(error))
            ]
        await self._record(frames, final=True)

    async def finish(self) -> web.StreamResponse:
        return web.Response()  # no client waits for it

    def abandoned(self) -> web.StreamResponse:
        return web.Response()

    async def close(self) -> None:
        return None

    async def _record(self, frames: list[Frame], *, final: bool) -> None:
        if frames:
            self._handle.add(_stored(frames))
            self._observer.sent(len(frames))
        pending = len(self._handle.events) - self._handle.flushed
        if final or pending >= RECORD_BATCH:
            await self.store()
        if final:
            self._handle.end()

    async def store(self, checkpoint: str | None = None) -> None:
        still_running = await self._runs.flush(
            self._store, self._handle, self.snapshot(), checkpoint
        )
        if not still_running and not self._handle.done and self._encoder.final is None:
            # Deleted, or reaped by another instance: nobody may read this run any more.
            self._handle.cancel()


async def start_background(
    request: web.Request, prepare: Callable[[web.Request, TurnPlan], Awaitable[PreparedRun]]
) -> web.StreamResponse:
    """Admit the run, store it `queued`, start it, answer at once (or with its stream)."""
    body = request[BODY]
    store = request.app[STATE].store
    if request[ENDPOINT].spec.task != "agent/v1/responses":
        raise errors.InvalidBody(
            "background runs are for the Responses API only.", param="$.background"
        )
    if store is None:
        raise errors.InvalidBody(
            "background responses need the state store, which is off on this server "
            "(STATE_STORE=off).",
            param="$.background",
        )
    if body.get("store") is False:
        raise errors.InvalidBody("background responses require store=true.", param="$.store")
    settings = request.app[SETTINGS]
    gate = request.app[GATE]
    runs = request.app[RUNS]
    if gate.draining:
        raise errors.ServerShuttingDown(headers={"Connection": "close"})
    if len(runs.local) >= settings.background_runs_per_worker:
        raise errors.TooManyRuns(
            f"This worker holds its limit of {settings.background_runs_per_worker} background "
            "runs; retry shortly.",
            headers={"Retry-After": "1"},
        )
    plan = await plan_turn(request, request[ENDPOINT].spec.task, body)
    holder = request[REQUEST_ID]
    try:
        agent = request.app[AGENT].require_agent()
        resume = settings.background_resume == "checkpoint" and resumable(
            agent, plan, user_token=request.get(USER_TOKEN)
        )
        if resume and plan.thread is not None:
            plan.thread = dataclasses.replace(plan.thread, durable=True)
        prepared = await prepare(request, plan)
        exchange = prepared.exchange
        assert isinstance(exchange, ResponsesExchange)
        handle = RunHandle(exchange.response_id, resumable=resume)
        sink = StoreSink(runs, store, handle, exchange, prepared.observer)
        queued = {**sink.snapshot(), "status": QUEUED}
        again = None
        if resume:
            again = record(
                plan,
                request_id=holder,
                openai_route=request.path != INVOCATIONS,
                created_at=exchange.created_at,
            )
        await store.runs.create(
            exchange.response_id,
            plan.owner,
            runs.worker,
            queued,
            again,
            thread_id=plan.leased,
            lease_holder=holder if plan.leased else None,
        )
    except BaseException:
        await end_turn_in(store, holder, plan)
        raise
    events = remembering_in(store, plan, exchange, prepared.agent.stream(exchange.run))
    _launch(request.app, holder, plan, prepared.observer, events, sink, handle)
    if body.get("stream") is True:
        return await follow(request, store, handle.response_id, -1)
    return web.Response(body=dumps(queued), content_type="application/json")


def _launch(
    app: web.Application,
    holder: str,
    plan: TurnPlan,
    observer: RunObserver,
    events: AsyncIterator[Event],
    sink: StoreSink,
    handle: RunHandle,
) -> None:
    runs = app[RUNS]
    runs.local[handle.response_id] = handle
    task = asyncio.create_task(
        _run(app, holder, plan, observer, events, sink, handle),
        name=f"background-{handle.response_id}",
    )
    handle.task = task
    app[GATE].hold(task)
    task.add_done_callback(lambda _: runs.local.pop(handle.response_id, None))


async def _run(
    app: web.Application,
    holder: str,
    plan: TurnPlan,
    observer: RunObserver,
    events: AsyncIterator[Event],
    sink: StoreSink,
    handle: RunHandle,
) -> None:
    settings = app[SETTINGS]
    store = app[STATE].store
    assert store is not None
    flusher = asyncio.create_task(_flush_while_running(sink, handle))
    handed_back = False

    def scoped(scope: RunScope) -> None:
        handle.scope = scope
        if handle.cancel_asked:
            scope.cancel()

    try:
        await store.runs.update(handle.response_id, {**sink.snapshot(), "status": IN_PROGRESS})
        try:
            await deliver(
                events,
                sink,
                observer,
                app[GATE],
                deadline_s=settings.background_deadline_s,
                scoped=scoped,
            )
        except asyncio.CancelledError:
            if not handle.cancel_asked or handle.done:
                raise
            # A cancel pushed twice (see _cancel): the run still ends `cancelled`.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await sink.fail(errors.RunCancelled())
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        try:
            if not handle.done and handle.handing_back:
                handed_back = await _hand_back(store, sink, handle, app[RUNS].worker)
            if not handle.done and not handed_back:
                # Stopped without an ending of its own (the worker's tasks were cancelled at
                # exit): what it produced is kept, and it ends failed, saying why.
                await _end_stopped(store, sink, handle)
        finally:
            handle.end()
            if not handed_back:
                # A run handed back keeps its thread's lease: the worker that takes it
                # holds it under the same name.
                await end_turn_in(store, holder, plan)


async def _hand_back(store: StateStore, sink: StoreSink, handle: RunHandle, worker: str) -> bool:
    """This worker stops before the run finished: its events so far are stored and the run
    is left for another worker, to go on from its last checkpoint."""
    try:
        await sink.store()
        handed = await store.runs.hand_back(handle.response_id, worker)
    except Exception:
        log.exception("Background run %s: handing it back failed", handle.response_id)
        return False
    if handed:
        log.warning(
            "Background run %s handed back at shutdown: another worker goes on with it",
            handle.response_id,
        )
    return handed


async def adopt(app: web.Application, response_id: str) -> bool:
    """Take over a resumable run whose worker died or handed it back, and go on with it
    from its last checkpoint. False: not taken here (not resumable, another worker took
    it first, or this worker has no room); the caller then ends it if it is abandoned."""
    settings = app[SETTINGS]
    runs = app[RUNS]
    store = app[STATE].store
    agent = app[AGENT].agent
    if store is None or agent is None or app[GATE].draining:
        return False
    if len(runs.local) >= settings.background_runs_per_worker:
        return False
    claimed = await store.runs.claim(
        response_id, runs.worker, time.time() - settings.background_stale_s
    )
    if claimed is None:
        return False
    log.warning(
        "Background run %s: its worker stopped; this worker goes on with it from its last "
        "checkpoint",
        response_id,
    )
    try:
        await _go_on(app, store, agent, claimed)
    except Exception:
        log.exception("Background run %s: resuming it failed", response_id)
        await _end_stopped_by(store, response_id, WORKER_LOST)
    return True


async def _go_on(app: web.Application, store: StateStore, agent: Agent, run: Resumable) -> None:
    runs = app[RUNS]
    saved = run.resume
    holder = str(saved["request_id"])
    sequence = await store.events.last_sequence(run.id) + 1
    plan = plan_of(saved, run.checkpoint_id or "")
    # The part run here has a trace of its own (the first part's, if any, ended with its
    # worker), linked to it by the request id and the response id it goes on with.
    served = app[AGENT]
    trace = served.tracer.start_request(
        RequestFacts(
            task=RESPONSES,
            request_id=holder,
            backend_kind=served.backend_kind,
            backend_endpoint=served.backend_endpoint,
            resumes=run.id,
        ),
        plan.body,
    )
    context = RequestContext(
        holder,
        app[SETTINGS].agent_name,
        callbacks=(trace.recorder,) if trace else (),
        thread=plan.thread,
        openai_route=bool(saved["openai_route"]),
    )
    exchange = dataclasses.replace(
        ResponsesTask().exchange(plan.body, context),
        response_id=run.id,
        created_at=int(saved["created_at"]),
    )
    observer = RunObserver(
        trace=trace,
        exchange=exchange,
        trace_return=TraceReturn(),
        metrics=app[METRICS],
        route="/v1/responses",
        started=asyncio.get_running_loop().time(),
    )
    handle = RunHandle(run.id, base=sequence, resumable=True, checkpoint=run.checkpoint_id)
    sink = StoreSink(runs, store, handle, exchange, observer)
    body = dict(run.body)
    sink.go_on_from(body, sequence)
    if isinstance(observer.reducer, ResponsesReducer):
        # The trace's output is the whole response, as the stream's last event has it.
        observer.reducer.go_on_from(body, sequence)
    reducer = exchange.reducer()
    reducer.go_on_from(body, sequence)
    events: AsyncIterator[Event]
    if run.checkpoint_id is None:
        events = _failing(
            errors.RunNotResumable(
                "The worker running this response stopped before the agent saved its first "
                "step; start it again."
            )
        )
    elif plan.leased is not None and not await _lease(store, plan, holder):
        events = _failing(errors.RunNotResumable())
    else:
        assert isinstance(agent, GraphAgent)
        events = agent.resume(exchange.run)
    _launch(
        app,
        holder,
        plan,
        observer,
        remembering_in(store, plan, exchange, events, reducer=reducer),
        sink,
        handle,
    )


async def _lease(store: StateStore, plan: TurnPlan, holder: str) -> bool:
    """The thread's lease, under the name the run held it by (it may still be running)."""
    thread = plan.responses.thread if plan.responses else None
    assert plan.leased is not None
    assert thread is not None
    try:
        await store.threads.acquire(
            plan.leased, owner=plan.owner, kind=thread.kind, holder=holder, lease_s=_LEASE_S
        )
    except ThreadBusy:
        return False
    return True


async def _failing(error: errors.ServiceError) -> AsyncIterator[Event]:
    raise error
    yield  # an async generator that fails when first read


async def _end_stopped(store: StateStore, sink: StoreSink, handle: RunHandle) -> None:
    with contextlib.suppress(Exception):
        await sink.store()
    # The lease is given back by the run's own ending (end_turn_in), after its checkpoints
    # of a first turn are deleted: not before, when another turn could already hold it.
    await _end_stopped_by(store, handle.response_id, STOPPED, release_lease=False)


async def _end_stopped_by(
    store: StateStore, response_id: str, message: str, *, release_lease: bool = True
) -> None:
    def ending(body: Any, sequence: int) -> tuple[dict[str, Any], list[StoredEvent]]:
        final, frames = abandoned(body, sequence, message)
        return final, _stored(frames)

    await store.end_abandoned_run(
        response_id, stale_before=math.inf, ending=ending, release_lease=release_lease
    )


async def _flush_while_running(sink: StoreSink, handle: RunHandle) -> None:
    """A run that produces events slowly still gets them to the store within FLUSH_S."""
    while not handle.done:
        await asyncio.sleep(FLUSH_S)
        if len(handle.events) > handle.flushed:
            try:
                await sink.store()
            except Exception:
                log.exception("Background run %s: storing its events failed", handle.response_id)


async def follow(
    request: web.Request, store: StateStore, response_id: str, after: int
) -> web.StreamResponse:
    """The run's events after `after`, then the live ones until it ends."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    settings = request.app[SETTINGS]
    heartbeat_s = settings.sse_heartbeat_s or None
    handle = request.app[RUNS].local.get(response_id)
    if handle is not None and after + 1 < handle.base:
        handle = None  # a resumed run: the events before it took over are in the store
    with contextlib.suppress(ConnectionError):
        if handle is not None:
            await _follow_local(response, handle, after, heartbeat_s)
        else:
            await _follow_store(
                response, store, response_id, after, settings.background_poll_s, heartbeat_s
            )
        await response.write_eof()
    return response


async def _follow_local(
    response: web.StreamResponse, handle: RunHandle, after: int, heartbeat_s: float | None
) -> None:
    sent = after
    while True:
        changed = handle.changed
        new = handle.after(sent)
        if new:
            await response.write(_encoded(new))
            sent = new[-1].sequence
            continue
        if handle.done:
            return
        try:
            async with asyncio.timeout(heartbeat_s):
                await changed.wait()
        except TimeoutError:
            await response.write(PING)


async def _follow_store(
    response: web.StreamResponse,
    store: StateStore,
    response_id: str,
    after: int,
    poll_s: float,
    heartbeat_s: float | None = None,
) -> None:
    sent = after
    quiet_since = time.monotonic()
    while True:
        # The status first: a run that ended stored all its events before its status.
        status = await store.runs.status(response_id)
        new = await store.events.after(response_id, sent)
        if new:
            await response.write(_encoded(new))
            sent = new[-1].sequence
            quiet_since = time.monotonic()
        if status not in ACTIVE:
            return
        if heartbeat_s and time.monotonic() - quiet_since > heartbeat_s:
            await response.write(PING)
            quiet_since = time.monotonic()
        await asyncio.sleep(poll_s)


def _encoded(events: Sequence[StoredEvent]) -> bytes:
    return NAMED_EVENTS.encode([Frame(serde.loads(e.payload), e.event) for e in events])


async def cancel_response(request: web.Request) -> web.Response:
    """POST /v1/responses/{id}/cancel: OpenAI's answers — the response, `cancelled` (again,
    for a second cancel); 400 for a run that already ended otherwise, or one that was not
    a background run; 404 for an unknown id."""
    response_id = request.match_info["response_id"]
    store = request.app[STATE].store
    owner = caller(request)
    run = await store.runs.get(owner, response_id) if store else None
    if run is None or store is None:
        if store is not None and await store.responses.get(owner, response_id) is not None:
            raise errors.InvalidBody(
                "Only responses created with background=true can be cancelled.",
                param="response_id",
            )
        raise errors.NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    if run.active:
        await _cancel(request, store, response_id)
        run = await store.runs.get(owner, response_id) or run
    elif run.status != "cancelled":
        raise errors.InvalidBody(
            f"Cannot cancel a response whose status is '{run.status}'.", param="response_id"
        )
    return web.Response(body=dumps(run.body), content_type="application/json")


async def _cancel(request: web.Request, store: StateStore, response_id: str) -> None:
    settings = request.app[SETTINGS]
    handle = request.app[RUNS].local.get(response_id)
    if handle is not None and handle.task is not None:
        handle.cancel()
        deadline = asyncio.get_running_loop().time() + _CANCEL_WAIT_S
        while not handle.task.done() and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CANCEL_NUDGE_S):
                    await asyncio.shield(handle.task)
            if not handle.task.done():
                # Python 3.11's wait_for (langchain-openai waits for each chunk with it)
                # loses a cancellation that lands as a chunk arrives: cancel again.
                handle.task.cancel()
        return
    # Another worker or instance runs it: its next heartbeat tick sees the request.
    await store.runs.request_cancel(response_id)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_CANCEL_WAIT_S):
            while await store.runs.status(response_id) in ACTIVE:
                if await settle(request.app, store, response_id):
                    return
                await asyncio.sleep(settings.background_poll_s)


async def watch_runs(app: web.Application) -> AsyncIterator[None]:
    """The worker's heartbeat tick while it serves; at exit, its runs end (drained first
    under gunicorn; cancelled here otherwise, and stored as `failed`, shutdown)."""
    runs = app[RUNS]
    store = app[STATE].store
    ticker = None
    if store is not None:
        ticker = asyncio.create_task(_tick_forever(app, store), name="background-runs")
    try:
        yield
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        resuming = app[SETTINGS].background_resume == "checkpoint"
        tasks = [handle.task for handle in runs.local.values() if handle.task is not None]
        for handle in runs.local.values():
            handle.handing_back = resuming and handle.resumable
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


async def _tick_forever(app: web.Application, store: StateStore) -> None:
    settings = app[SETTINGS]
    runs = app[RUNS]
    resuming = settings.background_resume == "checkpoint"

    async def adopting(response_id: str) -> bool:
        return await adopt(app, response_id)

    while True:
        try:
            await runs.tick(store, settings.background_stale_s, adopting if resuming else None)
        except Exception:
            log.exception("Background runs: the heartbeat tick failed; retrying")
        await asyncio.sleep(settings.background_heartbeat_s)
