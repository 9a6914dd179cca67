"""The Databricks chatbot (`e2e-chatbot-app-next`) in front of a default deployment: its
`/api/chat` route's model calls, made as it makes them (`@databricks/ai-sdk-provider` with
`API_PROXY=<app>/invocations`, streamText with the trace requested, its trace id read from
the stream for feedback, its generateText fallback), against the service configured by the
shipped app.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from pytest_aiohttp import AiohttpServer

from agent_service.models.offline import OFFLINE_NOTICE
from tests.clients.live import AGENT_TOOL_SCRIPT, Live, start_service
from tests.clients.node import drive
from tests.fakes.openai_server import Behaviour, FakeOpenAI

APP_YAML = Path(__file__).resolve().parents[2] / "app.yaml"
CHATBOT = "databricks-responses"


def app_yaml_env() -> dict[str, str]:
    """The plain settings of the shipped app.yaml. Those it takes from Databricks resources
    (the serving endpoint, the experiment) or that need a workspace are left out: the tests
    use the offline model and a local trace store instead."""
    document: dict[str, Any] = yaml.safe_load(APP_YAML.read_text())
    env = {entry["name"]: str(entry["value"]) for entry in document["env"] if "value" in entry}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def deployment(tracking_uri: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """app.yaml's settings, tracing to a local store; conversation state in a SQLite file
    unless app.yaml says otherwise (the default state store is one)."""
    return {
        "STATE_STORE": f"sqlite:///{tmp_path / 'state.db'}",
        **app_yaml_env(),
        "AGENT_TRACING": "true",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": f"chatbot-{request.node.name}",
        "AGENT_VERSION": "v-test",
    }


def chat(server: Live, *turns: str, mode: str = "chatbot", **fields: Any) -> dict[str, Any]:
    return {
        "client": CHATBOT,
        "root": server.root,
        "mode": mode,
        "turns": list(turns),
        "conversation_id": "chat-42",
        "user_id": "ada@example.com",
        **fields,
    }


async def test_default_deployment_answers_and_offers_feedback(
    aiohttp_server: AiohttpServer, deployment: dict[str, str]
) -> None:
    """A message gets its answer, and the trace id the chatbot attaches feedback to names the
    trace of that answer, in the chat's session, for its user."""
    server = await start_service(aiohttp_server, deployment)
    report = await drive(chat(server, "Why is the sky blue?"))
    assert report["error"] is None
    [answer] = report["answers"]
    assert answer["errors"] == []
    assert answer["fallback"] is None, "the stream itself worked"
    assert answer["text"] == f'{OFFLINE_NOTICE} You said: "Why is the sky blue?".'
    assert answer["trace_id"] is not None, "feedback is offered"
    trace = await server.trace(answer["trace_id"])
    assert trace.info.state == "OK"
    assert trace.info.trace_metadata["mlflow.trace.session"] == "chat-42"
    assert trace.info.trace_metadata["mlflow.trace.user"] == "ada@example.com"


async def test_default_deployment_carries_a_conversation(
    aiohttp_server: AiohttpServer, deployment: dict[str, str]
) -> None:
    """The chatbot sends the whole chat each turn (its earlier answers as output items): the
    second turn is answered like the first, in the same session."""
    server = await start_service(aiohttp_server, deployment)
    report = await drive(chat(server, "My name is Ada.", "What is my name?"))
    assert report["error"] is None
    first, second = report["answers"]
    assert first["errors"] == second["errors"] == []
    assert second["text"] == f'{OFFLINE_NOTICE} You said: "What is my name?".'
    trace = await server.trace(second["trace_id"])
    assert trace.info.trace_metadata["mlflow.trace.session"] == "chat-42"
    said = [item.get("role") for item in report["sent"][1]["input"]]
    assert said == ["user", "assistant", "user"], "the earlier answer went back with the chat"


async def test_default_deployment_titles_a_new_chat(
    aiohttp_server: AiohttpServer, deployment: dict[str, str]
) -> None:
    """The chatbot names a new chat with a non-streamed call, a system prompt and the model
    id `title-model`."""
    server = await start_service(aiohttp_server, deployment)
    fields = {"model": "title-model", "system": "Write a short title for this chat."}
    report = await drive(chat(server, "Why is the sky blue?", mode="generate", **fields))
    assert report["error"] is None
    [answer] = report["answers"]
    assert answer["text"].startswith(OFFLINE_NOTICE)
    assert answer["body_trace_id"] is not None


async def test_default_deployment_shows_the_agents_tools(
    aiohttp_server: AiohttpServer, deployment: dict[str, str]
) -> None:
    """The agent's own tool call and its result reach the chat as a tool the server ran."""
    server = await start_service(aiohttp_server, deployment, script=AGENT_TOOL_SCRIPT)
    report = await drive(chat(server, "What is 2**10?"))
    [answer] = report["answers"]
    assert answer["errors"] == []
    assert answer["text"] == "Let me compute. It is 1024."
    kinds = answer["ui_chunks"]
    assert kinds.index("tool-input-available") < kinds.index("tool-output-available")


async def test_mid_stream_failure_reaches_the_chat(
    aiohttp_server: AiohttpServer, deployment: dict[str, str]
) -> None:
    """The model endpoint drops the connection mid-answer: the chat keeps the text it got and
    shows an error (a failure before any text would make the chatbot retry without
    streaming)."""
    fake = FakeOpenAI()
    fake.behaviour = Behaviour(drop_after_chunks=3)
    upstream = await aiohttp_server(fake.app())
    env = {
        **deployment,
        "OPENAI_BASE_URL": str(upstream.make_url("/v1")),
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_MODEL": "fake-model",
        "MODEL_MAX_RETRIES": "0",
    }
    server = await start_service(aiohttp_server, env)
    [answer] = (await drive(chat(server, "Hi")))["answers"]
    assert answer["text"] == "Hello from"
    assert answer["errors"], "the chat shows the failure"
    assert answer["fallback"] is None


@pytest.mark.parametrize(
    ("client", "task", "spoken"),
    [
        pytest.param(CHATBOT, "agent/v1/chat", "Chat Completions", id="responses-to-chat"),
        pytest.param(CHATBOT, "agent/v2/chat", "ChatAgent", id="responses-to-chat-agent"),
        pytest.param(
            "databricks-chat-agent", "agent/v1/responses", "Responses", id="chat-agent-to-responses"
        ),
    ],
)
async def test_wrong_protocol_says_what_the_route_speaks(
    aiohttp_server: AiohttpServer, client: str, task: str, spoken: str
) -> None:
    """A client speaking another protocol than the one `/invocations` serves gets a 400 that
    names the protocol the route speaks and the setting that chooses it."""
    server = await start_service(aiohttp_server, {"AGENT_TASK": task})
    report = await drive({**chat(server, "Hi", mode="generate"), "client": client})
    error = report["error"]
    assert error is not None
    assert error["status_code"] == 400
    assert spoken in error["message"]
    assert "AGENT_TASK" in error["message"]
