"""The seed prototype's agent module (`agent_server/agent.py` of the first Databricks agent
apps), with one import changed: `agent_server.server` / `agent_server.mlflow_config` →
`agent_service.agent_server`.

    uv run python -m examples.seed_agent.agent --port 8000     # as the prototype's main()
    uv run agent-server --agent examples.seed_agent.agent:app  # the same, directly

The functions get the request as a dict and answer in the Responses protocol's own shapes:
text deltas while the model writes, then the finished message. The server makes the full
OpenAI event sequence of them, and serves them on /v1/chat/completions too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Any

from agent_service.agent_server import (
    create_server,
    invoke,
    parse_server_args,
    setup_mlflow,
    stream,
)
from agent_service.models.offline import OfflineChatModel

# Your model here: ChatDatabricks(endpoint="databricks-claude-sonnet-4"), ChatOpenAI(...).
model = OfflineChatModel()


def _conversation(request: dict[str, Any]) -> list[dict[str, str]]:
    """The request's messages as LangChain takes them (text only, in this small agent)."""
    conversation = []
    for item in request["input"]:
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        if item.get("role") and isinstance(content, str):
            conversation.append({"role": item["role"], "content": content})
    return conversation


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


@invoke()
async def non_streaming(request: dict[str, Any]) -> dict[str, Any]:
    reply = await model.ainvoke(_conversation(request))
    return {"output": [_message_item(reply.id or uuid.uuid4().hex, reply.text)]}


@stream()
async def streaming(request: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    item_id = uuid.uuid4().hex
    text = []
    async for chunk in model.astream(_conversation(request)):
        if chunk.text:
            text.append(chunk.text)
            yield {"type": "response.output_text.delta", "item_id": item_id, "delta": chunk.text}
    yield {"type": "response.output_item.done", "item": _message_item(item_id, "".join(text))}


agent_server = create_server("agent/v1/responses")
app = agent_server.app


def main() -> None:
    args = parse_server_args()
    setup_mlflow()
    agent_server.run(
        "examples.seed_agent.agent:app", port=args.port, workers=args.workers, reload=args.reload
    )


if __name__ == "__main__":
    main()
