"""The rules that decide which thread a request continues and what of it is new."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from agent_service.state.identity import (
    ANONYMOUS,
    owner_from_api_key,
    owner_from_forwarded_user,
    thread_key,
)
from agent_service.state.resend import new_part
from agent_service.state.thread_names import client_thread

HELD: list[BaseMessage] = [SystemMessage("be brief"), HumanMessage("hi"), AIMessage("hello")]


def texts(messages: list[BaseMessage]) -> list[str]:
    return [message.text for message in messages]


def test_a_resent_conversation_adds_only_what_follows_the_last_answer() -> None:
    resent = [*HELD, HumanMessage("and now?")]
    assert texts(new_part(HELD, resent)) == ["and now?"]


def test_tool_results_for_the_last_answer_are_the_new_part() -> None:
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {}, "id": "call_1"}])
    resent = [*HELD, HumanMessage("look it up"), call, ToolMessage("42", tool_call_id="call_1")]
    assert texts(new_part(HELD, resent)) == ["42"]


def test_a_client_that_sends_only_the_new_turn_is_taken_whole() -> None:
    assert texts(new_part(HELD, [HumanMessage("next")])) == ["next"]


def test_a_system_prompt_sent_every_turn_does_not_pile_up() -> None:
    assert texts(new_part(HELD, [SystemMessage("be brief"), HumanMessage("next")])) == ["next"]
    changed = [SystemMessage("be verbose"), HumanMessage("next")]
    assert texts(new_part(HELD, changed)) == ["be verbose", "next"]


def test_an_empty_thread_takes_the_whole_history() -> None:
    history = [HumanMessage("hi"), AIMessage("hello"), HumanMessage("more")]
    assert texts(new_part([], history)) == ["hi", "hello", "more"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "custom_inputs": {"thread_id": "t1", "session_id": "s1"},
                "context": {"conversation_id": "c1"},
            },
            ("t1", "$.custom_inputs.thread_id"),
        ),
        (
            {"custom_inputs": {"session_id": "s1"}, "context": {"conversation_id": "c1"}},
            ("s1", "$.custom_inputs.session_id"),
        ),
        ({"context": {"conversation_id": "c1"}}, ("c1", "$.context.conversation_id")),
        ({"custom_inputs": {"thread_id": 7}}, ("7", "$.custom_inputs.thread_id")),
        (
            {"custom_inputs": {"thread_id": " "}, "context": {"conversation_id": "c1"}},
            ("c1", "$.context.conversation_id"),
        ),
    ],
)
def test_the_thread_name_comes_from_the_first_place_that_has_one(
    body: dict[str, Any], expected: tuple[str, str]
) -> None:
    found = client_thread(body)
    assert found is not None
    assert (found.name, found.source) == expected


def test_no_name_means_no_thread() -> None:
    assert client_thread({"messages": [], "custom_inputs": {"thread_id": None}}) is None


def test_owners_never_carry_the_secret_and_keep_callers_apart() -> None:
    owner = owner_from_api_key("sk-very-secret")
    assert "sk-very-secret" not in owner
    assert owner == owner_from_api_key("sk-very-secret")
    assert owner != owner_from_api_key("sk-other")
    assert owner_from_forwarded_user("ann@example.com") != owner_from_api_key("ann@example.com")
    assert thread_key(owner, "t1") != thread_key(ANONYMOUS, "t1")
