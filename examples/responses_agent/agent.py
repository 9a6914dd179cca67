"""An MLflow `ResponsesAgent` class, served as it is — the models-from-code file one would log
with `mlflow.pyfunc.log_model(python_model="agent.py")`, ending in `set_model`.

    uv run agent-server --agent examples/responses_agent/agent.py
    uv run agent-server --agent examples.responses_agent.agent:AGENT

`predict` and `predict_stream` are MLflow's sync methods: the server runs them in its thread
pool. MLflow's agent classes need numpy and pandas (`uv add numpy pandas`).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator

import mlflow
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
    to_chat_completions_input,
)

from agent_service.models.offline import OfflineChatModel


class OfflineResponsesAgent(ResponsesAgent):
    def __init__(self) -> None:
        # Your model here: ChatDatabricks(endpoint=...), ChatOpenAI(...), any client.
        self.model = OfflineChatModel()

    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:
        outputs = [
            event.item
            for event in self.predict_stream(request)
            if event.type == "response.output_item.done"
        ]
        return ResponsesAgentResponse(output=outputs, custom_outputs=request.custom_inputs)

    def predict_stream(
        self, request: ResponsesAgentRequest
    ) -> Generator[ResponsesAgentStreamEvent, None, None]:
        messages = to_chat_completions_input([item.model_dump() for item in request.input])
        item_id = uuid.uuid4().hex
        text = []
        for chunk in self.model.stream(messages):
            if chunk.text:
                text.append(chunk.text)
                yield ResponsesAgentStreamEvent(
                    **self.create_text_delta(delta=chunk.text, item_id=item_id)
                )
        yield ResponsesAgentStreamEvent(
            type="response.output_item.done",
            item=self.create_text_output_item(text="".join(text), id=item_id),
        )


AGENT = OfflineResponsesAgent()
mlflow.models.set_model(AGENT)
