"""The OpenAI-compatible backend: the real langchain-openai client against a fake endpoint."""

from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import ServiceFactory, openai_env
from tests.fakes.openai_server import Behaviour, FakeOpenAI
from tests.sse_decoder import decode
from tests.test_production import until
from tests.wire import HELLO, Client, aggregate_chat_chunks, check_response_event

FakeEndpoint = tuple[FakeOpenAI, TestServer]


@pytest.fixture
async def client(make_service: ServiceFactory, fake_openai: FakeEndpoint) -> Client:
    return await make_service(openai_env(fake_openai[1]))


async def test_json_answer_comes_from_the_endpoint(
    client: Client, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    body = await (await client.post("/invocations", json=HELLO)).json()
    assert body["choices"][0]["message"]["content"] == "Hello from the fake model."
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}
    [seen] = fake.requests
    assert seen.body["model"] == "fake-model"
    assert seen.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert seen.headers["Authorization"] == "Bearer sk-test-key"
    assert not seen.body.get("stream")


async def test_stream_relays_tokens_as_they_come(client: Client, fake_openai: FakeEndpoint) -> None:
    fake, _ = fake_openai
    response = await client.post(
        "/v1/chat/completions",
        json={**HELLO, "stream": True, "stream_options": {"include_usage": True}},
    )
    events = decode([await response.read()])
    assert events[-1].data == "[DONE]"
    chunks = [event.json() for event in events[:-1]]
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert deltas == ["", "Hello", " from", " the", " fake", " model.", None]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}
    [seen] = fake.requests
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True}


async def test_request_parameters_reach_the_model(
    client: Client, fake_openai: FakeEndpoint
) -> None:
    fake, _ = fake_openai
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 77,
        "stop": ["END"],
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "seed": 42,
        "response_format": {"type": "json_object"},
    }
    for stream in (False, True):
        response = await client.post("/invocations", json={**HELLO, **params, "stream": stream})
        assert response.status == 200
        await response.read()
    for seen in fake.requests:
        for key, value in params.items():
            assert seen.body[key] == value, key
        assert "custom_inputs" not in seen.body


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("stream", [False, True])
async def test_refused_credentials_are_a_502(
    client: Client, fake_openai: FakeEndpoint, status: int, stream: bool
) -> None:
    fake_openai[0].behaviour = Behaviour(status=status)
    response = await client.post("/invocations", json={**HELLO, "stream": stream})
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["code"] == "upstream_authentication_failed"
    assert "refused the agent's credentials" in error["message"]
    assert "fake failure" not in error["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_rate_limit_passes_retry_after_on(
    client: Client, fake_openai: FakeEndpoint, stream: bool
) -> None:
    fake_openai[0].behaviour = Behaviour(status=429, headers={"Retry-After": "7"})
    response = await client.post("/invocations", json={**HELLO, "stream": stream})
    assert response.status == 429
    assert response.headers["Retry-After"] == "7"
    error = (await response.json())["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "upstream_rate_limited"


@pytest.mark.parametrize("stream", [False, True])
async def test_server_error_is_a_generic_502(
    client: Client, fake_openai: FakeEndpoint, stream: bool
) -> None:
    fake_openai[0].behaviour = Behaviour(
        status=500, error_body={"error": {"message": "db password=hunter2 leaked", "type": "x"}}
    )
    response = await client.post("/invocations", json={**HELLO, "stream": stream})
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["type"] == "server_error"
    assert "hunter2" not in error["message"]
    assert response.headers["X-Request-Id"] in error["message"]


async def test_unreachable_endpoint_is_a_502(
    make_service: ServiceFactory, unused_tcp_port: int
) -> None:
    client = await make_service(
        {
            "OPENAI_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}/v1",
            "OPENAI_API_KEY": "k",
            "OPENAI_MODEL": "m",
            "MODEL_MAX_RETRIES": "0",
        }
    )
    response = await client.post("/invocations", json=HELLO)
    assert response.status == 502
    assert (await response.json())["error"]["code"] == "upstream_error"


@pytest.mark.parametrize("stream", [False, True])
async def test_hanging_endpoint_is_a_504(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, stream: bool
) -> None:
    fake, server = fake_openai
    fake.behaviour = Behaviour(hang=True)
    client = await make_service(openai_env(server, MODEL_TIMEOUT_SECONDS="0.5"))
    response = await client.post("/invocations", json={**HELLO, "stream": stream})
    assert response.status == 504
    assert (await response.json())["error"]["code"] == "upstream_timeout"


async def test_connection_dropped_mid_stream_ends_with_an_error_event(
    client: Client, fake_openai: FakeEndpoint
) -> None:
    fake_openai[0].behaviour = Behaviour(drop_after_chunks=3)
    response = await client.post("/invocations", json={**HELLO, "stream": True})
    assert response.status == 200, "the stream had started: the failure is in-band"
    events = decode([await response.read()])
    assert events[-1].data == "[DONE]"
    error_event = events[-2].json()
    assert set(error_event) == {"error"}
    assert error_event["error"]["type"] == "server_error"
    assert error_event["error"]["code"] == "upstream_error"
    contents = [e.json()["choices"][0]["delta"].get("content") for e in events[:-2]]
    assert contents == ["", "Hello", " from"]


async def test_startup_log_names_the_backend(
    make_service: ServiceFactory, fake_openai: FakeEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="agent_service")
    client = await make_service(openai_env(fake_openai[1]))
    info = await (await client.get("/agent/info")).json()
    assert info["model"]["backend"] == "openai"
    assert "fake-model" in info["model"]["endpoint"]
    assert "sk-test-key" not in str(info)
    assert any("openai model backend" in r.getMessage() for r in caplog.records)
    assert all("sk-test-key" not in r.getMessage() for r in caplog.records)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_client_tools_go_to_the_endpoint_and_calls_come_back(
    client: Client, fake_openai: FakeEndpoint, stream: bool
) -> None:
    fake, _ = fake_openai
    fake.behaviour = Behaviour(
        tokens=(), tool_calls=(("get_weather", '{"city": "Oslo"}'),), finish_reason="tool_calls"
    )
    body = {**HELLO, "tools": [WEATHER_TOOL], "tool_choice": "required", "stream": stream}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 200
    if stream:
        chunks = [e.json() for e in decode([await response.read()])[:-1]]
        answer = aggregate_chat_chunks(chunks)
    else:
        answer = await response.json()
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    # Streams relay the endpoint's argument text as is; JSON answers re-serialise it.
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    [seen] = fake.requests
    assert seen.body["tools"] == [WEATHER_TOOL]
    assert seen.body["tool_choice"] == "required"


async def test_responses_stream_from_a_real_client(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    client = await make_service(openai_env(fake_openai[1], AGENT_TASK="agent/v1/responses"))
    events = decode(
        [await (await client.post("/invocations", json={"input": "Hi", "stream": True})).read()]
    )
    assert events[-1].data == "[DONE]"
    payloads = [e.json() for e in events[:-1]]
    for payload in payloads:
        check_response_event(payload)
    final = payloads[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello from the fake model."
    assert final["usage"]["input_tokens"] == 1


async def test_a_stopped_worker_closes_its_connections_to_the_endpoint(
    make_service: ServiceFactory, fake_openai: FakeEndpoint
) -> None:
    """The model's HTTP client belongs to the worker: it closes when the worker stops (a
    client shared by the process kept them open, tied to an event loop that was gone)."""
    _, server = fake_openai
    client = await make_service(openai_env(server))
    assert (await client.post("/invocations", json=HELLO)).status == 200
    assert server.runner is not None
    assert server.runner.server is not None
    endpoint = server.runner.server
    assert endpoint.connections  # kept alive for the next request
    await client.close()

    async def all_closed() -> bool:
        return not endpoint.connections

    await until(all_closed, what="the endpoint sees every connection closed")
    # A second worker on the same endpoint, in a new event loop of its own, is served too.
    again = await make_service(openai_env(server))
    assert (await again.post("/invocations", json=HELLO)).status == 200
