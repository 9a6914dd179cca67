"""State across processes: two gunicorn workers on one SQLite file under concurrent load,
and two service instances (different ports) sharing one PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp.test_utils import TestServer

from tests.databases import PostgresServer
from tests.fakes.openai_server import FakeOpenAI
from tests.processes import BIN, free_port, running_server
from tests.state_probes import count

CONVERSATIONS = 12
TURNS = 4


async def turns_of_one_conversation(client: httpx.AsyncClient, n: int) -> dict[str, Any]:
    """One client's conversation, turn after turn: a Conversations API conversation, a
    previous_response_id chain and a named Chat Completions thread at the same time."""
    conversation = (await client.post("/v1/conversations", json={})).json()
    previous = None
    pids = set()
    for turn in range(TURNS):
        text = f"conversation {n} turn {turn}"
        in_conversation = await client.post(
            "/v1/responses", json={"input": text, "conversation": conversation["id"]}
        )
        assert in_conversation.status_code == 200, in_conversation.text
        chained = await client.post(
            "/v1/responses", json={"input": text, "previous_response_id": previous}
        )
        assert chained.status_code == 200, chained.text
        previous = chained.json()["id"]
        chat = await client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": text}],
                "custom_inputs": {"thread_id": f"thread-{n}"},
            },
        )
        assert chat.status_code == 200, chat.text
        pids.add((await client.get("/health")).json()["pid"])
    return {"conversation": conversation["id"], "last": previous, "pids": pids}


async def test_two_workers_share_one_sqlite_file_under_load(tmp_path: Path) -> None:
    port = free_port()
    state = f"sqlite:///{tmp_path / 'state.db'}"
    args = [str(BIN / "agent-server"), "--port", str(port), "--workers", "2"]
    env = {"STATE_STORE": state, "AGENT_TRACING": "false", "OFFLINE_TOKEN_DELAY_MS": "2"}
    with running_server(args, env, tmp_path / "server.log", port) as server:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=60) as client:
            results = await asyncio.gather(
                *(turns_of_one_conversation(client, n) for n in range(CONVERSATIONS))
            )
            for result in results:
                items = (
                    await client.get(f"/v1/conversations/{result['conversation']}/items?limit=100")
                ).json()
                # No lost turn: every input and every answer, in the conversation.
                assert len(items["data"]) == 2 * TURNS
                inputs = (await client.get(f"/v1/responses/{result['last']}/input_items")).json()
                assert len(inputs["data"]) == 1
        server.stop()
        log = server.log()
    assert "database is locked" not in log
    assert "Traceback" not in log
    assert len(set().union(*(result["pids"] for result in results))) == 2, "both workers served"
    # Every chained turn was saved: 12 chains of 4 responses, plus the conversations' turns.
    assert await count(state, "agent_responses") == 2 * CONVERSATIONS * TURNS


def seen(fake: FakeOpenAI) -> list[str]:
    return [str(message.get("content")) for message in fake.requests[-1].body["messages"]]


async def test_two_instances_share_one_postgresql(
    tmp_path: Path, postgres_server: PostgresServer, fake_openai: tuple[FakeOpenAI, TestServer]
) -> None:
    fake, model = fake_openai
    state = postgres_server.create_database()
    env = {
        "STATE_STORE": state,
        "AGENT_TRACING": "false",
        "OPENAI_BASE_URL": str(model.make_url("/v1")),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": "fake-model",
        "MODEL_MAX_RETRIES": "0",
    }
    ports = free_port(), free_port()
    with (
        running_server(
            [str(BIN / "agent-server"), "--port", str(ports[0])], env, tmp_path / "a.log", ports[0]
        ) as a,
        running_server(
            [str(BIN / "agent-server"), "--port", str(ports[1])], env, tmp_path / "b.log", ports[1]
        ) as b,
    ):
        # The fake model answers on this event loop: the clients must not block it.
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=120) as on_a,
            httpx.AsyncClient(base_url=b.base_url, timeout=120) as on_b,
        ):
            await across_instances(on_a, on_b, fake)


async def across_instances(
    on_a: httpx.AsyncClient, on_b: httpx.AsyncClient, fake: FakeOpenAI
) -> None:
    # A conversation started on A continues on B.
    conversation = (await on_a.post("/v1/conversations", json={})).json()["id"]
    for client, text in ((on_a, "I am Ada."), (on_b, "Who am I?")):
        answer = await client.post(
            "/v1/responses", json={"input": text, "conversation": conversation}
        )
        assert answer.status_code == 200, answer.text
    assert seen(fake) == ["I am Ada.", "Hello from the fake model.", "Who am I?"]
    # A response made on A is retrieved and continued on B.
    first = (await on_a.post("/v1/responses", json={"input": "Remember 7."})).json()
    assert (await on_b.get(f"/v1/responses/{first['id']}")).json() == first
    chained = await on_b.post(
        "/v1/responses", json={"input": "Which number?", "previous_response_id": first["id"]}
    )
    assert chained.status_code == 200, chained.text
    assert seen(fake) == ["Remember 7.", "Hello from the fake model.", "Which number?"]
    # A named thread too; and a deletion on B is seen by A.
    for client, text in ((on_a, "first"), (on_b, "second")):
        answer = await client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": text}],
                "custom_inputs": {"thread_id": "t"},
            },
        )
        assert answer.status_code == 200, answer.text
    assert seen(fake) == ["first", "Hello from the fake model.", "second"]
    assert (await on_b.delete(f"/v1/responses/{first['id']}")).status_code == 200
    assert (await on_a.get(f"/v1/responses/{first['id']}")).status_code == 404
    items = orjson.loads((await on_b.get(f"/v1/conversations/{conversation}/items")).content)
    assert len(items["data"]) == 4
