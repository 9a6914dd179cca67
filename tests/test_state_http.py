"""Conversations the server remembers, through HTTP, on SQLite and on PostgreSQL: stored
responses, previous_response_id, conversations, item references, client-named threads,
isolation between callers, deletion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import FakeOpenAI
from tests.state_probes import count, mentions
from tests.wire import Client


@pytest.fixture
async def stateful(
    make_service: ServiceFactory, fake_openai: tuple[FakeOpenAI, TestServer], state_url: str
) -> tuple[Client, FakeOpenAI]:
    fake, server = fake_openai
    client = await make_service(openai_env(server, STATE_STORE=state_url))
    return client, fake


def seen_texts(fake: FakeOpenAI, request: int = -1) -> list[tuple[str, str]]:
    """(role, text) of every message the model was sent in one request."""
    texts = []
    for message in fake.requests[request].body["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        texts.append((message["role"], content or ""))
    return texts


async def respond(client: Client, status: int = 200, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/responses", json=body, headers=body.pop("headers", {}))
    payload: dict[str, Any] = await response.json()
    assert response.status == status, payload
    return payload


async def test_a_stored_response_can_be_retrieved_and_listed(
    stateful: tuple[Client, FakeOpenAI],
) -> None:
    client, _ = stateful
    created = await respond(client, input="Tell me a story", metadata={"k": "v"})
    assert created["store"] is True
    assert created["previous_response_id"] is None
    assert created["conversation"] is None
    fetched = await client.get(f"/v1/responses/{created['id']}")
    assert fetched.status == 200
    assert await fetched.json() == created
    items = await (await client.get(f"/v1/responses/{created['id']}/input_items")).json()
    assert items["object"] == "list"
    assert items["has_more"] is False
    [item] = items["data"]
    assert item["type"] == "message"
    assert item["role"] == "user"
    assert item["content"] == [{"type": "input_text", "text": "Tell me a story"}]
    assert items["first_id"] == items["last_id"] == item["id"]


async def test_previous_response_id_continues_the_conversation(
    stateful: tuple[Client, FakeOpenAI],
) -> None:
    client, fake = stateful
    first = await respond(client, input="My name is Ada.", instructions="Be brief.")
    second = await respond(client, input="What is my name?", previous_response_id=first["id"])
    assert second["previous_response_id"] == first["id"]
    assert seen_texts(fake) == [
        ("user", "My name is Ada."),
        ("assistant", "Hello from the fake model."),
        ("user", "What is my name?"),
    ], "instructions are not carried over to the next turn"
    # A fork: continuing the first response again does not see the second turn.
    await respond(client, input="Who am I?", previous_response_id=first["id"])
    assert [text for _, text in seen_texts(fake)] == [
        "My name is Ada.",
        "Hello from the fake model.",
        "Who am I?",
    ]


async def test_conversations_remember_their_items_and_turns(
    stateful: tuple[Client, FakeOpenAI],
) -> None:
    client, fake = stateful
    created = await client.post(
        "/v1/conversations",
        json={"metadata": {"topic": "demo"}, "items": [{"role": "user", "content": "I like tea."}]},
    )
    conversation = await created.json()
    assert created.status == 200
    assert conversation["object"] == "conversation"
    assert conversation["metadata"] == {"topic": "demo"}
    first = await respond(client, input="Noted?", conversation=conversation["id"])
    assert first["conversation"] == {"id": conversation["id"]}
    await respond(client, input="What do I like?", conversation={"id": conversation["id"]})
    assert seen_texts(fake) == [
        ("user", "I like tea."),
        ("user", "Noted?"),
        ("assistant", "Hello from the fake model."),
        ("user", "What do I like?"),
    ]
    listed = await (
        await client.get(f"/v1/conversations/{conversation['id']}/items?order=asc&limit=100")
    ).json()
    assert [item.get("role") for item in listed["data"]] == [
        "user",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    newest = await (
        await client.get(f"/v1/conversations/{conversation['id']}/items?limit=1")
    ).json()
    assert newest["has_more"] is True
    assert newest["data"][0]["id"] == listed["data"][-1]["id"]


async def test_conversation_metadata_update_and_delete(
    stateful: tuple[Client, FakeOpenAI], state_url: str
) -> None:
    client, _ = stateful
    conversation = await (await client.post("/v1/conversations", json={})).json()
    path = f"/v1/conversations/{conversation['id']}"
    updated = await client.post(path, json={"metadata": {"topic": "project-x"}})
    assert (await updated.json())["metadata"] == {"topic": "project-x"}
    await respond(client, input="remember-the-alamo", conversation=conversation["id"])
    deleted = await client.delete(path)
    assert await deleted.json() == {
        "id": conversation["id"],
        "object": "conversation.deleted",
        "deleted": True,
    }
    assert (await client.get(path)).status == 404
    # The stored response is kept (as OpenAI keeps it); the conversation's items and the
    # agent's memory of them are gone.
    remaining = await mentions(state_url, "remember-the-alamo")
    assert set(remaining) == {"agent_response_items"}


async def test_unknown_and_deleted_ids_are_404_in_the_openai_envelope(
    stateful: tuple[Client, FakeOpenAI], state_url: str
) -> None:
    client, _ = stateful
    created = await respond(client, input="forget-me-please")
    deleted = await client.delete(f"/v1/responses/{created['id']}")
    assert await deleted.json() == {"id": created["id"], "object": "response", "deleted": True}
    assert await mentions(state_url, "forget-me-please") == {}
    assert await count(state_url, "agent_responses") == 0
    for method, path in (
        ("GET", f"/v1/responses/{created['id']}"),
        ("DELETE", f"/v1/responses/{created['id']}"),
        ("GET", f"/v1/responses/{created['id']}/input_items"),
        ("GET", "/v1/responses/resp_never"),
        ("GET", "/v1/conversations/conv_never"),
        ("DELETE", "/v1/conversations/conv_never"),
        ("GET", "/v1/conversations/conv_never/items"),
    ):
        response = await client.request(method, path)
        body = await response.json()
        assert response.status == 404, path
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["code"] == "not_found"
        assert "not found" in body["error"]["message"]


async def test_state_errors_name_the_field(stateful: tuple[Client, FakeOpenAI]) -> None:
    client, _ = stateful
    both = await respond(
        client, 400, input="x", previous_response_id="resp_1", conversation="conv_1"
    )
    assert both["error"]["param"] == "$.previous_response_id"
    missing = await respond(client, 400, input="x", previous_response_id="resp_missing")
    assert missing["error"]["code"] == "previous_response_not_found"
    assert missing["error"]["message"].startswith("Previous response with id 'resp_missing'")
    unknown = await respond(client, 404, input="x", conversation="conv_missing")
    assert unknown["error"]["param"] == "$.conversation"
    reference = await respond(client, 400, input=[{"type": "item_reference", "id": "msg_nope"}])
    assert reference["error"]["param"] == "$.input[0]"


async def test_item_references_stand_for_stored_items(stateful: tuple[Client, FakeOpenAI]) -> None:
    client, fake = stateful
    first = await respond(client, input="Remember 42.")
    inputs = await (await client.get(f"/v1/responses/{first['id']}/input_items")).json()
    await respond(
        client,
        input=[
            {"type": "item_reference", "id": inputs["data"][0]["id"]},
            {"type": "item_reference", "id": first["output"][0]["id"]},
            {"role": "user", "content": "Which number?"},
        ],
        store=False,
    )
    assert seen_texts(fake) == [
        ("user", "Remember 42."),
        ("assistant", "Hello from the fake model."),
        ("user", "Which number?"),
    ]


async def test_store_false_keeps_nothing(
    stateful: tuple[Client, FakeOpenAI], state_url: str
) -> None:
    client, _ = stateful
    created = await respond(client, input="off-the-record", store=False)
    assert created["store"] is False
    assert (await client.get(f"/v1/responses/{created['id']}")).status == 404
    assert await mentions(state_url, "off-the-record") == {}


async def test_a_streamed_response_is_stored_before_it_completes(
    stateful: tuple[Client, FakeOpenAI],
) -> None:
    client, fake = stateful
    response = await client.post("/v1/responses", json={"input": "Stream it", "stream": True})
    completed = None
    async for line in response.content:
        if line.startswith(b"data: ") and b'"response.completed"' in line:
            import orjson

            completed = orjson.loads(line[len(b"data: ") :])["response"]
            break
    assert completed is not None
    stored = await (await client.get(f"/v1/responses/{completed['id']}")).json()
    assert stored == completed
    await respond(client, input="And then?", previous_response_id=completed["id"])
    assert seen_texts(fake)[-2] == ("assistant", "Hello from the fake model.")


async def test_callers_see_only_their_own_state(
    make_service: ServiceFactory, fake_openai: tuple[FakeOpenAI, TestServer], state_url: str
) -> None:
    _, server = fake_openai
    client = await make_service(
        openai_env(server, STATE_STORE=state_url, AGENT_API_KEYS="key-ann,key-bob")
    )
    ann = {"Authorization": "Bearer key-ann"}
    bob = {"Authorization": "Bearer key-bob"}
    created = await respond(client, input="ann's secret", headers=ann)
    conversation = await (await client.post("/v1/conversations", json={}, headers=ann)).json()
    assert (await client.get(f"/v1/responses/{created['id']}", headers=bob)).status == 404
    assert (await client.delete(f"/v1/responses/{created['id']}", headers=bob)).status == 404
    assert (await client.get(f"/v1/conversations/{conversation['id']}", headers=bob)).status == 404
    stolen = await respond(
        client, 400, input="and?", previous_response_id=created["id"], headers=bob
    )
    assert stolen["error"]["code"] == "previous_response_not_found"
    await respond(client, 404, input="and?", conversation=conversation["id"], headers=bob)
    assert (await client.get(f"/v1/responses/{created['id']}", headers=ann)).status == 200
    # Databricks Apps: the forwarded user is the caller.
    app_client = await make_service(openai_env(server, STATE_STORE=state_url))
    mine = await respond(app_client, input="hi", headers={"X-Forwarded-Email": "ann@example.com"})
    other = {"X-Forwarded-Email": "bob@example.com"}
    assert (await app_client.get(f"/v1/responses/{mine['id']}", headers=other)).status == 404


async def test_a_named_thread_remembers_without_duplicating_resent_history(
    stateful: tuple[Client, FakeOpenAI],
) -> None:
    client, fake = stateful
    first = await client.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "I am Ada."}],
            "custom_inputs": {"thread_id": "chat-7"},
        },
    )
    assert first.headers["X-Thread-Id"] == "chat-7"
    assert (await first.json())["custom_outputs"]["thread_id"] == "chat-7"
    # The Databricks chatbot's way: the whole conversation again, every turn.
    resent = {
        "messages": [
            {"role": "user", "content": "I am Ada."},
            {"role": "assistant", "content": "Hello from the fake model."},
            {"role": "user", "content": "Who am I?"},
        ],
        "custom_inputs": {"thread_id": "chat-7"},
    }
    assert (await client.post("/v1/chat/completions", json=resent)).status == 200
    assert seen_texts(fake) == [
        ("user", "I am Ada."),
        ("assistant", "Hello from the fake model."),
        ("user", "Who am I?"),
    ]
    # Only the new turn: the thread supplies the rest.
    only_new = {
        "messages": [{"role": "user", "content": "Again?"}],
        "context": {"conversation_id": "chat-7"},
    }
    assert (await client.post("/v1/chat/completions", json=only_new)).status == 200
    assert len(seen_texts(fake)) == 5


async def test_a_conversation_runs_one_turn_at_a_time(stateful: tuple[Client, FakeOpenAI]) -> None:
    client, fake = stateful
    conversation = await (await client.post("/v1/conversations", json={})).json()
    fake.behaviour.hold = asyncio.Event()
    first = asyncio.create_task(
        client.post("/v1/responses", json={"input": "slow", "conversation": conversation["id"]})
    )
    await fake.received.wait()
    busy = await respond(client, 409, input="fast", conversation=conversation["id"])
    assert busy["error"]["code"] == "conversation_locked"
    fake.behaviour.hold.set()
    assert (await first).status == 200
    await respond(client, input="now", conversation=conversation["id"])
    assert [text for _, text in seen_texts(fake)][-2:] == ["Hello from the fake model.", "now"]


async def test_a_failed_turn_releases_its_conversation(stateful: tuple[Client, FakeOpenAI]) -> None:
    client, fake = stateful
    conversation = await (await client.post("/v1/conversations", json={})).json()
    fake.behaviour.status = 500
    fake.behaviour.error_body = {"error": {"message": "boom", "type": "server_error"}}
    await respond(client, 502, input="fails", conversation=conversation["id"])
    fake.behaviour.status = 200
    await respond(client, input="works", conversation=conversation["id"])
    # The failed turn left nothing in the agent's memory.
    assert seen_texts(fake) == [("user", "works")]


async def test_store_false_can_continue_a_stored_response_without_keeping_anything(
    stateful: tuple[Client, FakeOpenAI], state_url: str
) -> None:
    client, fake = stateful
    first = await respond(client, input="Keep this.")
    before = await count(state_url, "agent_responses")
    second = await respond(
        client, input="ephemeral-question", previous_response_id=first["id"], store=False
    )
    assert seen_texts(fake) == [
        ("user", "Keep this."),
        ("assistant", "Hello from the fake model."),
        ("user", "ephemeral-question"),
    ]
    assert (await client.get(f"/v1/responses/{second['id']}")).status == 404
    assert await count(state_url, "agent_responses") == before
    assert await mentions(state_url, "ephemeral-question") == {}


async def test_thread_names_that_cannot_be_a_header_come_back_in_the_body_only(
    stateful: tuple[Client, FakeOpenAI],
) -> None:
    client, _ = stateful
    odd = {"messages": [{"role": "user", "content": "hi"}], "context": {"conversation_id": "é\x1b"}}
    answer = await client.post("/v1/chat/completions", json=odd)
    assert answer.status == 200
    assert "X-Thread-Id" not in answer.headers
    assert (await answer.json())["custom_outputs"]["thread_id"] == "é\x1b"
    long = {
        "messages": [{"role": "user", "content": "hi"}],
        "custom_inputs": {"session_id": "x" * 257},
    }
    refused = await client.post("/v1/chat/completions", json=long)
    assert refused.status == 400
    assert (await refused.json())["error"]["param"] == "$.custom_inputs.session_id"
