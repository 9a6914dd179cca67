"""OpenAI's conversation state for one Responses request: what it continues, and what of it
is kept afterwards.

Before the run, `prepare_responses_turn` resolves the request's state against the store:

- `previous_response_id`: the run forks from the checkpoint that response ended on (as
  LangGraph time travel does), so two requests may continue the same response;
- `conversation`: the run continues the conversation's thread from its latest checkpoint,
  one request at a time; items added through the Conversations API come first;
- `item_reference` input items become the items they name;
- otherwise, `store` (default true) starts a thread of its own for the new response, so
  that it can be continued; `store: false` with no ids runs exactly as a stateless request.

`instructions` are not carried over to later turns (OpenAI's rule): the graph sees them as
the first system message of the turn that sent them only.

After the run, `finish_responses_turn` saves the response and its input and output items,
and appends them to the conversation, in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_service.errors import InvalidBody, NotFound
from agent_service.state.identity import thread_key
from agent_service.state.records import Item, NewResponse, ThreadKind
from agent_service.state.store import StateStore
from agent_service.state.thread_names import client_thread


@dataclass(frozen=True, slots=True)
class ThreadPlan:
    """Where a stateful run's memory lives and how the run joins it."""

    thread_id: str
    kind: ThreadKind
    # What the client calls the thread (its conversation or thread id, or a response id).
    name: str
    # Fork from this checkpoint (a previous response); None: continue from the latest.
    checkpoint_id: str | None = None
    # Only one request at a time may continue from the latest checkpoint.
    needs_lease: bool = False
    # The client resends the whole conversation each turn: add only the new part.
    resends_history: bool = False


@dataclass(slots=True)
class ResponsesTurn:
    # The request as the protocol should see it: item references resolved, conversation
    # items not yet in the agent's memory first.
    body: dict[str, Any]
    # This response's own input items (with ids), as `input_items` lists them.
    input_items: list[Item]
    store: bool
    thread: ThreadPlan | None = None
    # A response from another thread to start this one from (its messages are copied).
    seed_from: ThreadPlan | None = None
    conversation_id: str | None = None
    previous_response_id: str | None = None
    pending_item_ids: list[str] = field(default_factory=list)


class StateDisabled(InvalidBody):
    default_code = "state_disabled"
    default_message = (
        "This server keeps no conversation state (STATE_STORE=off): send the whole "
        "conversation in the request."
    )


def new_item_id(prefix: str = "msg") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


async def prepare_responses_turn(
    store: StateStore | None, owner: str, body: Mapping[str, Any]
) -> ResponsesTurn:
    previous = body.get("previous_response_id") or None
    conversation = _conversation_id(body.get("conversation"))
    wants_store = body.get("store") is not False
    named = client_thread(body)
    items = _items_of(body["input"])
    has_references = any(_kind(item) == "item_reference" for item in items)
    if previous and conversation:
        raise InvalidBody(
            "previous_response_id and conversation cannot be used together: continue a "
            "conversation by its id, or a chain of responses by the previous response's id.",
            param="$.previous_response_id",
            code="mutually_exclusive_parameters",
        )
    if store is None:
        # A client thread name alone is no reason to refuse: without state the request is
        # answered as it always was, from what it carries.
        if previous or conversation or has_references:
            raise StateDisabled(param=_state_param(previous, conversation, has_references))
        return ResponsesTurn({**body, "store": False}, [], store=False)
    if has_references:
        items = await resolve_references(store, owner, items)
    # The agent gets the input as the client sent it (references aside); the stored copy
    # is in the form the API lists items in (ids, content as parts).
    agent_input: str | list[Item] = items if has_references else body["input"]
    turn = ResponsesTurn(
        {**body, "input": agent_input},
        [stored_item(item) for item in items],
        store=wants_store,
        previous_response_id=previous,
    )
    if conversation:
        await _join_conversation(store, owner, conversation, turn)
    elif previous:
        await _continue_response(store, owner, previous, turn)
    elif named:
        turn.thread = ThreadPlan(
            thread_key(owner, named.name),
            "client",
            named.name,
            needs_lease=True,
            resends_history=True,
        )
    elif wants_store:
        turn.thread = _new_response_thread(owner)
    return turn


async def _join_conversation(
    store: StateStore, owner: str, conversation_id: str, turn: ResponsesTurn
) -> None:
    if await store.conversations.get(owner, conversation_id) is None:
        raise NotFound(
            f"Conversation with id '{conversation_id}' not found.", param="$.conversation"
        )
    pending = await store.conversations.not_in_memory(conversation_id)
    turn.conversation_id = conversation_id
    turn.pending_item_ids = [item["id"] for item in pending]
    if pending:
        turn.body["input"] = [*pending, *_items_of(turn.body["input"])]
    turn.thread = ThreadPlan(
        thread_key(owner, conversation_id), "conversation", conversation_id, needs_lease=True
    )


async def _continue_response(
    store: StateStore, owner: str, previous: str, turn: ResponsesTurn
) -> None:
    stored = await store.responses.get(owner, previous)
    if stored is None or stored.thread_id is None or stored.checkpoint_id is None:
        raise InvalidBody(
            f"Previous response with id '{previous}' not found.",
            param="$.previous_response_id",
            code="previous_response_not_found",
        )
    origin = ThreadPlan(stored.thread_id, "response", previous, checkpoint_id=stored.checkpoint_id)
    kind = await store.threads.kind_of(stored.thread_id)
    if turn.store and kind == "response":
        # A fork in the same thread: LangGraph keeps both branches.
        turn.thread = origin
        return
    # A response of a conversation (whose latest checkpoint must stay the conversation's),
    # or a turn that is not to be stored: start from a copy of its messages.
    turn.seed_from = origin
    if turn.store:
        turn.thread = _new_response_thread(owner)


def _new_response_thread(owner: str) -> ThreadPlan:
    """The thread of a chain of responses: its first response starts it, and every response
    that continues the chain forks from the checkpoint its predecessor ended on."""
    name = f"responses_{uuid.uuid4().hex}"
    return ThreadPlan(thread_key(owner, name), "response", name)


async def finish_responses_turn(
    store: StateStore,
    owner: str,
    turn: ResponsesTurn,
    response: Mapping[str, Any],
    *,
    checkpoint_id: str | None,
) -> None:
    """Keep what the turn produced: the response (when stored), the conversation's new items,
    and which conversation items the agent has now seen."""
    output = [dict(item) for item in response.get("output") or ()]
    async with store.db.transaction() as session:
        if turn.store:
            await store.responses.save(
                NewResponse(
                    id=str(response["id"]),
                    owner=owner,
                    body=response,
                    input_items=turn.input_items,
                    output_items=output,
                    thread_id=turn.thread.thread_id if turn.thread else None,
                    checkpoint_id=checkpoint_id,
                    conversation_id=turn.conversation_id,
                    previous_response_id=turn.previous_response_id,
                ),
                session,
            )
        if turn.conversation_id is not None:
            await store.conversations.remember(session, turn.conversation_id, turn.pending_item_ids)
            await store.conversations.append(
                session, turn.conversation_id, [*turn.input_items, *output], in_memory=True
            )


def _conversation_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value) if value else None


def _state_param(previous: str | None, conversation: str | None, _references: bool) -> str:
    if previous:
        return "$.previous_response_id"
    if conversation:
        return "$.conversation"
    return "$.input"


def _items_of(value: str | Sequence[Mapping[str, Any]]) -> list[Item]:
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return [dict(item) for item in value]


def _kind(item: Mapping[str, Any]) -> str:
    return str(item.get("type") or ("message" if "role" in item else "item_reference"))


async def resolve_references(
    store: StateStore, owner: str, items: list[Item], path: str = "$.input"
) -> list[Item]:
    """Items with every `item_reference` replaced by the stored item it names."""
    for index, item in enumerate(items):
        if _kind(item) == "item_reference" and not isinstance(item.get("id"), str):
            raise InvalidBody(
                f"{path}[{index}]: an item reference needs the id of a stored item.",
                param=f"{path}[{index}]",
            )
    wanted = [str(item["id"]) for item in items if _kind(item) == "item_reference"]
    found = await store.responses.find_items(owner, wanted)
    missing = [item_id for item_id in wanted if item_id not in found]
    if missing:
        found.update(await store.conversations.find_items(owner, missing))
    resolved = []
    for index, item in enumerate(items):
        if _kind(item) != "item_reference":
            resolved.append(item)
            continue
        target = found.get(str(item["id"]))
        if target is None:
            raise InvalidBody(
                f"Item with id '{item['id']}' not found.",
                param=f"{path}[{index}]",
                code="item_not_found",
            )
        resolved.append(dict(target))
    return resolved


_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def stored_item(item: Mapping[str, Any]) -> Item:
    """The item as stored and listed: typed, with an id, message content as parts."""
    kind = _kind(item)
    stored: Item = {"type": kind, **item}
    if not isinstance(stored.get("id"), str) or not stored["id"]:
        stored["id"] = new_item_id(_ID_PREFIXES.get(kind, "item"))
    if kind in ("message", "function_call", "function_call_output") and not stored.get("status"):
        stored["status"] = "completed"
    if kind == "message" and isinstance(stored.get("content"), str):
        part = "output_text" if stored.get("role") == "assistant" else "input_text"
        stored["content"] = [{"type": part, "text": stored["content"]}]
    return stored
