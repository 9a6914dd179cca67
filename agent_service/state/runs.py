"""Background runs as the store keeps them: status, owner, the worker running it and its
heartbeat, a cancel request, and the response as it last stood.

Every status change after the start is conditional on the run still being active, so the
first ending wins: a run reaped as failed (its worker died) is not turned back into
`completed` by a worker that was only slow, and a cancel does not undo a completion.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_service.state.database import Database, Session
from agent_service.state.serde import dumps, loads

QUEUED = "queued"
IN_PROGRESS = "in_progress"
ACTIVE = (QUEUED, IN_PROGRESS)
_ACTIVE_SQL = "status IN ('queued', 'in_progress')"


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    status: str
    worker: str
    heartbeat_at: float
    body: Mapping[str, Any]

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True, slots=True)
class Resumable:
    """A run this worker took over: what it needs to go on from its last checkpoint."""

    id: str
    owner: str
    body: Mapping[str, Any]
    # What `http/background.py` recorded at the start (the request as the agent saw it...).
    resume: Mapping[str, Any]
    # The last checkpoint whose events are all stored; None: the run wrote none.
    checkpoint_id: str | None


class RunRepository:
    def __init__(self, db: Database, *, retention_s: float | None) -> None:
        self._db = db
        self._retention_s = retention_s

    async def create(
        self,
        run_id: str,
        owner: str,
        worker: str,
        body: Mapping[str, Any],
        resume: Mapping[str, Any] | None = None,
        *,
        thread_id: str | None = None,
        lease_holder: str | None = None,
    ) -> None:
        """A new run; `thread_id` and `lease_holder`: the conversation thread it leased and
        as whom (whoever ends it after its worker died gives the lease back)."""
        now = time.time()
        expires = now + self._retention_s if self._retention_s else None
        await self._db.execute(
            "INSERT INTO agent_runs (id, owner, status, worker, created_at, heartbeat_at,"
            " expires_at, body, resume, thread_id, lease_holder)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                owner,
                str(body["status"]),
                worker,
                now,
                now,
                expires,
                dumps(body),
                None if resume is None else dumps(resume),
                thread_id,
                lease_holder,
            ),
        )

    async def get(self, owner: str, run_id: str) -> RunRecord | None:
        row = await self._db.fetch_one(
            "SELECT id, status, worker, heartbeat_at, body FROM agent_runs"
            " WHERE id = ? AND owner = ?",
            (run_id, owner),
        )
        if row is None:
            return None
        return RunRecord(
            row["id"], row["status"], row["worker"], float(row["heartbeat_at"]), loads(row["body"])
        )

    async def status(self, run_id: str) -> str | None:
        row = await self._db.fetch_one("SELECT status FROM agent_runs WHERE id = ?", (run_id,))
        return None if row is None else str(row["status"])

    async def update(
        self, run_id: str, body: Mapping[str, Any], session: Session | None = None
    ) -> bool:
        """The run's response as it stands (its status included), while the run is active.
        False when the run had already ended (reaped, or deleted)."""
        changed = await (session or self._db).execute(
            f"UPDATE agent_runs SET status = ?, body = ? WHERE id = ? AND {_ACTIVE_SQL}",
            (str(body["status"]), dumps(body), run_id),
        )
        return changed > 0

    async def checkpointed(
        self,
        run_id: str,
        body: Mapping[str, Any],
        checkpoint_id: str,
        session: Session | None = None,
    ) -> bool:
        """The run's events up to its LangGraph checkpoint `checkpoint_id` are stored: a
        resumed run starts from there. False when the run had already ended."""
        changed = await (session or self._db).execute(
            f"UPDATE agent_runs SET status = ?, body = ?, checkpoint_id = ? WHERE id = ?"
            f" AND {_ACTIVE_SQL}",
            (str(body["status"]), dumps(body), checkpoint_id, run_id),
        )
        return changed > 0

    async def claim(self, run_id: str, worker: str, stale_before: float) -> Resumable | None:
        """Take over a resumable run whose worker stopped beating before `stale_before` (or
        handed it back): of the workers that try at once, exactly one gets it (the update is
        conditional on the heartbeat it read). None: not resumable, or taken already."""
        now = time.time()
        taken = await self._db.execute(
            f"UPDATE agent_runs SET worker = ?, heartbeat_at = ? WHERE id = ? AND {_ACTIVE_SQL}"
            " AND heartbeat_at < ? AND resume IS NOT NULL",
            (worker, now, run_id, stale_before),
        )
        if not taken:
            return None
        row = await self._db.fetch_one(
            "SELECT owner, body, resume, checkpoint_id FROM agent_runs WHERE id = ?", (run_id,)
        )
        if row is None:
            return None
        return Resumable(
            run_id, row["owner"], loads(row["body"]), loads(row["resume"]), row["checkpoint_id"]
        )

    async def hand_back(self, run_id: str, worker: str) -> bool:
        """This worker stops (SIGTERM) before the run could finish: any other worker may
        take it at once (its heartbeat is made stale)."""
        changed = await self._db.execute(
            f"UPDATE agent_runs SET heartbeat_at = 0 WHERE id = ? AND worker = ? AND {_ACTIVE_SQL}"
            " AND resume IS NOT NULL",
            (run_id, worker),
        )
        return changed > 0

    async def request_cancel(self, run_id: str) -> None:
        await self._db.execute(
            f"UPDATE agent_runs SET cancel_requested = 1 WHERE id = ? AND {_ACTIVE_SQL}",
            (run_id,),
        )

    async def beat(self, worker: str) -> list[str]:
        """This worker's runs are alive; returns those another instance asked to cancel."""
        now = time.time()
        await self._db.execute(
            f"UPDATE agent_runs SET heartbeat_at = ? WHERE worker = ? AND {_ACTIVE_SQL}",
            (now, worker),
        )
        rows = await self._db.fetch_all(
            f"SELECT id FROM agent_runs WHERE worker = ? AND cancel_requested = 1"
            f" AND {_ACTIVE_SQL}",
            (worker,),
        )
        return [str(row["id"]) for row in rows]

    async def stale(self, older_than: float) -> list[str]:
        """Active runs whose worker has not beaten since `older_than` (it died)."""
        rows = await self._db.fetch_all(
            f"SELECT id FROM agent_runs WHERE {_ACTIVE_SQL} AND heartbeat_at < ?",
            (older_than,),
        )
        return [str(row["id"]) for row in rows]

    async def forget(self, run_id: str) -> None:
        await self._db.execute("DELETE FROM agent_runs WHERE id = ?", (run_id,))
