"""MLflow's model-serving agent classes served as they are, in all three protocols: a ChatAgent
that streams, a ChatModel that only predicts (the ResponsesAgent is in test_examples.py).
Their sync methods run in threads and get their requests in their own types."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Generator
from typing import Any

import pytest
from mlflow.pyfunc.model import ChatAgent, ChatModel
from mlflow.types.agent import ChatAgentChunk, ChatAgentMessage, ChatAgentResponse, ChatContext
from mlflow.types.llm import (
    ChatChoice,
    ChatCompletionResponse,
    ChatMessage,
    ChatParams,
)

from tests.conftest import ServiceFactory
from tests.served import INVOCATIONS_TASK, ask_three_ways


class EchoChatAgent(ChatAgent):
    def __init__(self) -> None:
        self.seen: list[tuple[list[ChatAgentMessage], ChatContext | None, str]] = []

    def predict(  # type: ignore[override] # MLflow's classes redefine predict
        self,
        messages: list[ChatAgentMessage],
        context: ChatContext | None = None,
        custom_inputs: dict[str, Any] | None = None,
    ) -> ChatAgentResponse:
        text = "".join(
            chunk.delta.content or "" for chunk in self.predict_stream(messages, context)
        )
        reply = ChatAgentMessage(role="assistant", content=text, id=uuid.uuid4().hex)
        return ChatAgentResponse(messages=[reply], custom_outputs=custom_inputs)

    def predict_stream(  # type: ignore[override]
        self,
        messages: list[ChatAgentMessage],
        context: ChatContext | None = None,
        custom_inputs: dict[str, Any] | None = None,
    ) -> Generator[ChatAgentChunk, None, None]:
        self.seen.append((messages, context, threading.current_thread().name))
        message_id = uuid.uuid4().hex
        for word in ("Echo:", " ", messages[-1].content or ""):
            delta = ChatAgentMessage(role="assistant", content=word, id=message_id)
            yield ChatAgentChunk(delta=delta)


async def test_a_chat_agent_class(make_service: ServiceFactory) -> None:
    agent = EchoChatAgent()
    client = await make_service(INVOCATIONS_TASK, agent=agent)
    answers = await ask_three_ways(client, "Hello")
    assert answers.texts == ("Echo: Hello", "Echo: Hello", "Echo: Hello")

    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "context": {"conversation_id": "c-1", "user_id": "u-1"},
        "custom_inputs": {"k": "v"},
    }
    reply = await (await client.post("/invocations", json=body)).json()
    assert reply["custom_outputs"] == {"k": "v"}
    messages, context, thread = agent.seen[-1]
    assert isinstance(messages[0], ChatAgentMessage)
    assert context == ChatContext(conversation_id="c-1", user_id="u-1")
    assert thread != threading.main_thread().name


class ShoutingChatModel(ChatModel):
    def predict(  # type: ignore[override]
        self, context: Any, messages: list[ChatMessage], params: ChatParams
    ) -> ChatCompletionResponse:
        text = str(messages[-1].content or "").upper()
        if params.max_tokens is not None:
            text = text[: params.max_tokens]
        choice = ChatChoice(message=ChatMessage(role="assistant", content=text))
        return ChatCompletionResponse(choices=[choice])


# MLflow deprecates ChatModel in favour of ResponsesAgent; agents written with it are served.
@pytest.mark.filterwarnings("ignore:.*ChatModel.* is deprecated:FutureWarning")
async def test_a_chat_model_class_that_only_predicts(make_service: ServiceFactory) -> None:
    client = await make_service(INVOCATIONS_TASK, agent=ShoutingChatModel())
    answers = await ask_three_ways(client, "hello")
    assert answers.texts == ("HELLO", "HELLO", "HELLO")

    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 2, "model": "x"}
    reply = await (await client.post("/v1/chat/completions", json=body)).json()
    assert reply["choices"][0]["message"]["content"] == "HE"
    info = await (await client.get("/agent/info")).json()
    assert info["tracing"] is not None
