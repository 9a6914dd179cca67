"""MLflow's model-serving agent classes served as they are: an instance of `ResponsesAgent`,
`ChatAgent` or `ChatModel` (or what a models-from-code file hands `mlflow.models.set_model`).

Each becomes a `FunctionAgent` in its own protocol: `predict` is the @invoke function and
`predict_stream` (when the class overrides it) the @stream one. Both are MLflow's sync
methods, so they run in the thread pool, and they get their requests in their own types,
converted the way MLflow's model server converts them. MLflow's classes need numpy and
pandas (`mlflow.pyfunc` imports them); an agent that subclasses them has them installed, and
nothing here imports MLflow's classes unless the agent's code already did.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any

from agent_service.agents.functions import FunctionAgent, Handlers


def mlflow_agent(target: object) -> FunctionAgent | None:
    """The agent for an instance of one of MLflow's agent classes, else None."""
    pyfunc = sys.modules.get("mlflow.pyfunc")
    if pyfunc is None:
        return None  # nobody imported MLflow's classes: `target` cannot be one
    if isinstance(target, pyfunc.ResponsesAgent):
        return _responses_agent(target, pyfunc.ResponsesAgent)
    if isinstance(target, pyfunc.ChatAgent):
        return _chat_agent(target, pyfunc.ChatAgent)
    if isinstance(target, pyfunc.ChatModel):
        return _chat_model(target, pyfunc.ChatModel)
    return None


def mlflow_task(target: object) -> str | None:
    """The protocol an instance of one of MLflow's agent classes speaks, else None."""
    pyfunc = sys.modules.get("mlflow.pyfunc")
    if pyfunc is None:
        return None
    for base, task in (
        (pyfunc.ResponsesAgent, "agent/v1/responses"),
        (pyfunc.ChatAgent, "agent/v2/chat"),
        (pyfunc.ChatModel, "agent/v1/chat"),
    ):
        if isinstance(target, base):
            return task
    return None


def set_model_target() -> object | None:
    """What a models-from-code file handed `mlflow.models.set_model(...)`, if it did."""
    model_module = sys.modules.get("mlflow.models.model")
    return getattr(model_module, "__mlflow_model__", None) if model_module else None


def _overrides(agent: object, base: type, method: str) -> bool:
    return getattr(type(agent), method, None) is not getattr(base, method, None)


def _responses_agent(agent: Any, base: type) -> FunctionAgent:
    from mlflow.types.responses import ResponsesAgentRequest

    handlers = Handlers(invoke=agent.predict)
    if _overrides(agent, base, "predict_stream"):
        handlers.stream = agent.predict_stream
    return FunctionAgent(
        "agent/v1/responses",
        handlers,
        request_type=lambda body: ResponsesAgentRequest(**body),
        kind=f"MLflow ResponsesAgent {type(agent).__name__}",
    )


def _chat_agent(agent: Any, base: type) -> FunctionAgent:
    from mlflow.types.agent import ChatAgentMessage, ChatContext

    def arguments(body: dict[str, Any]) -> dict[str, Any]:
        context = body.get("context")
        return {
            "messages": [ChatAgentMessage(**message) for message in body["messages"]],
            "context": ChatContext(**context) if context else None,
            "custom_inputs": body.get("custom_inputs"),
        }

    def predict(body: dict[str, Any]) -> Any:
        return agent.predict(**arguments(body))

    handlers = Handlers(invoke=predict)
    if _overrides(agent, base, "predict_stream"):

        def predict_stream(body: dict[str, Any]) -> Iterator[Any]:
            yield from agent.predict_stream(**arguments(body))

        handlers.stream = predict_stream
    return FunctionAgent("agent/v2/chat", handlers, kind=f"MLflow ChatAgent {type(agent).__name__}")


def _chat_model(model: Any, base: type) -> FunctionAgent:
    from mlflow.types.llm import ChatMessage, ChatParams

    def call(method: Callable[..., Any], body: dict[str, Any]) -> Any:
        body = dict(body)
        messages = [
            ChatMessage.from_dict(message)  # type: ignore[no-untyped-call]
            for message in body.pop("messages", [])
        ]
        params = ChatParams.from_dict(body)  # type: ignore[no-untyped-call]
        parameters = inspect.signature(method).parameters
        # MLflow lets `predict` leave out its unused `context` (a PythonModelContext, which
        # a served model does not have).
        if "context" in parameters or len(parameters) == 3:
            return method(None, messages, params)
        return method(messages, params)

    def predict(body: dict[str, Any]) -> Any:
        return call(model.predict, body)

    handlers = Handlers(invoke=predict)
    if _overrides(model, base, "predict_stream"):

        def predict_stream(body: dict[str, Any]) -> Iterator[Any]:
            yield from call(model.predict_stream, body)

        handlers.stream = predict_stream
    return FunctionAgent("agent/v1/chat", handlers, kind=f"MLflow ChatModel {type(model).__name__}")
