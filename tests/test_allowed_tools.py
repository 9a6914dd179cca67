"""`tool_choice: {"type": "allowed_tools", ...}` (Responses): a Chat Completions upstream gets
only the allowed tools and a tool_choice it knows, and a call to a tool outside the set never
goes back to the client as a call to run."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer
from openai.types.responses import Response

from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.open_responses import check_open_responses_body

FakeEndpoint = tuple[FakeOpenAI, TestServer]
PARAMETERS = {"type": "object", "properties": {}}
TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": PARAMETERS},
    {"type": "function", "name": "get_time", "parameters": PARAMETERS},
]


def allowed(mode: str, *names: str) -> dict[str, Any]:
    tools = [{"type": "function", "name": name} for name in names]
    return {"type": "allowed_tools", "mode": mode, "tools": tools}


async def ask(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, tool_choice: dict[str, Any]
) -> dict[str, Any]:
    client = await make_service({**openai_env(fake_openai[1]), "AGENT_TASK": "agent/v1/responses"})
    body = {"input": "Weather?", "tools": TOOLS, "tool_choice": tool_choice}
    response = await client.post("/v1/responses", json=body)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    # The OpenAI route's judges (MLflow's types know no allowed_tools tool_choice).
    check_open_responses_body(answer)
    Response.model_validate(answer)
    return answer


async def test_the_upstream_gets_the_allowed_tools_and_a_choice_it_knows(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake = fake_openai[0]
    fake.behaviour = Behaviour(tool_calls=(("get_weather", "{}"),))
    answer = await ask(make_service, fake_openai, allowed("required", "get_weather"))
    sent = fake.requests[0].body
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_weather"]
    assert sent["tool_choice"] == "required"
    [call] = [item for item in answer["output"] if item["type"] == "function_call"]
    assert call["name"] == "get_weather"
    assert answer["tool_choice"] == allowed("required", "get_weather"), "echoed as sent"


async def test_auto_mode(make_service: ServiceFactory, fake_openai: FakeEndpoint) -> None:
    await ask(make_service, fake_openai, allowed("auto", "get_time"))
    sent = fake_openai[0].requests[0].body
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_time"]
    assert sent["tool_choice"] == "auto"


async def test_a_call_outside_the_set_never_reaches_the_client(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    fake = fake_openai[0]
    fake.behaviour = Behaviour(tool_calls=(("get_time", "{}"),))
    answer = await ask(make_service, fake_openai, allowed("auto", "get_weather"))
    assert not [item for item in answer["output"] if item["type"] == "function_call"]


async def test_an_unknown_mode_is_a_400(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    client = await make_service({**openai_env(fake_openai[1]), "AGENT_TASK": "agent/v1/responses"})
    body = {"input": "Hi", "tools": TOOLS, "tool_choice": allowed("sometimes", "get_time")}
    response = await client.post("/v1/responses", json=body)
    assert response.status == 400
    assert (await response.json())["error"]["param"].startswith("$.tool_choice")
