"""What a background run records at its start so that another worker can go on with it
(BACKGROUND_RESUME=checkpoint): the request as the agent saw it, and its conversation state.

Only a LangGraph graph agent running in a thread of the state store's checkpointer can be
resumed; a run on the caller's own token (Databricks Apps user authorization) cannot either:
the token is never stored, and another worker has no other right to act as that user.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from agent_service.agents.base import Agent
from agent_service.agents.graph_runner import GraphAgent
from agent_service.http.turns import TurnPlan
from agent_service.run import ThreadRef
from agent_service.state.turns import ResponsesTurn, ThreadPlan


def resumable(agent: Agent, plan: TurnPlan, *, user_token: str | None) -> bool:
    thread = plan.thread
    return (
        isinstance(agent, GraphAgent)
        and agent.resumable
        and thread is not None
        and thread.thread_id is not None
        and thread.seed_thread_id is None
        and plan.responses is not None
        and user_token is None
    )


def record(
    plan: TurnPlan, *, request_id: str, openai_route: bool, created_at: int
) -> dict[str, Any]:
    assert plan.thread is not None
    assert plan.responses is not None
    return {
        "request_id": request_id,
        "openai_route": openai_route,
        "created_at": created_at,
        "owner": plan.owner,
        "body": plan.body,
        "thread": dataclasses.asdict(plan.thread),
        "leased": plan.leased,
        "head": plan.head,
        "turn": dataclasses.asdict(plan.responses),
    }


def plan_of(record: Mapping[str, Any], checkpoint_id: str) -> TurnPlan:
    """The run's turn again, its thread to go on from `checkpoint_id`."""
    turn = dict(record["turn"])
    for key in ("thread", "seed_from"):
        if turn.get(key) is not None:
            turn[key] = ThreadPlan(**turn[key])
    thread = ThreadRef(**{**record["thread"], "checkpoint_id": checkpoint_id, "durable": True})
    return TurnPlan(
        dict(record["body"]),
        str(record["owner"]),
        thread=thread,
        responses=ResponsesTurn(**turn),
        leased=record.get("leased"),
        head=record.get("head"),
    )
