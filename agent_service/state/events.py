"""The events of a stored response's stream, kept so that a client can read them again: all
of them, or those after the sequence number it last saw (`starting_after`, Last-Event-ID).

Written in batches (a transaction per batch, not per token) by `EventRecorder`; the batch
holding the final event is written before that event goes out, so a client that saw the end
finds every event stored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_service.state.database import Database, Session
from agent_service.state.serde import dumps

# Events written per transaction: a token is an event, and a transaction per token would
# cost more than the token.
RECORD_BATCH = 64


@dataclass(frozen=True, slots=True)
class StoredEvent:
    sequence: int
    # The event's type (`response.output_text.delta`, ...) and its JSON payload as sent.
    event: str
    payload: str


class EventLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self, response_id: str, events: Sequence[StoredEvent], session: Session | None = None
    ) -> None:
        """Store `events` (in `session`'s transaction when given, else in one of their own)."""
        if not events:
            return
        now = time.time()
        await (session or self._db).execute_many(
            "INSERT INTO agent_response_events (response_id, seq, event, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(response_id, e.sequence, e.event, e.payload, now) for e in events],
        )

    async def after(self, response_id: str, sequence: int) -> list[StoredEvent]:
        """The events after `sequence` (-1: all), in order. The caller checked the owner."""
        rows = await self._db.fetch_all(
            "SELECT seq, event, payload FROM agent_response_events"
            " WHERE response_id = ? AND seq > ? ORDER BY seq",
            (response_id, sequence),
        )
        return [StoredEvent(int(row["seq"]), row["event"], row["payload"]) for row in rows]

    async def last_sequence(self, response_id: str) -> int:
        """The sequence number of the last stored event (-1: none)."""
        row = await self._db.fetch_one(
            "SELECT MAX(seq) AS seq FROM agent_response_events WHERE response_id = ?",
            (response_id,),
        )
        return -1 if row is None or row["seq"] is None else int(row["seq"])

    async def forget(self, session: Session, response_id: str) -> None:
        await session.execute(
            "DELETE FROM agent_response_events WHERE response_id = ?", (response_id,)
        )


class EventRecorder:
    """Keeps one stream's events, a batch at a time; `final` writes what is pending."""

    def __init__(self, log: EventLog, response_id: str, *, batch: int = RECORD_BATCH) -> None:
        self._log = log
        self._response_id = response_id
        self._batch = batch
        self._pending: list[StoredEvent] = []

    async def add(self, events: Sequence[tuple[str, Mapping[str, Any]]], *, final: bool) -> None:
        for event, payload in events:
            sequence = payload.get("sequence_number")
            if type(sequence) is int:
                self._pending.append(StoredEvent(sequence, event, dumps(payload)))
        if final or len(self._pending) >= self._batch:
            pending, self._pending = self._pending, []
            await self._log.append(self._response_id, pending)
