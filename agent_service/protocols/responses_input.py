"""Responses requests → what the agent runs on: messages, model parameters, tools.

OpenAI's Responses input is a list of items (messages with content parts, function calls,
function call outputs, reasoning); the agent runs on chat messages. Consecutive function calls
become one assistant message with several tool calls, as Chat Completions represents them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)

from agent_service.errors import InvalidBody
from agent_service.run import INSTRUCTIONS_MESSAGE_ID

# Item types that carry nothing the model needs again (the agent keeps no reasoning state;
# tool listings and approvals of hosted MCP servers are not ours).
_SKIPPED_ITEMS = frozenset(
    {"reasoning", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"}
)


def messages_from_input(body: Mapping[str, Any]) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    if instructions := body.get("instructions"):
        # A fixed id: in a thread, the next turn's instructions replace these (OpenAI does
        # not carry instructions over to later turns).
        messages.append(SystemMessage(instructions, id=INSTRUCTIONS_MESSAGE_ID))
    items = body["input"]
    if isinstance(items, str):
        messages.append(HumanMessage(items))
        return messages
    call_names: dict[str, str] = {}
    for index, item in enumerate(items):
        path = f"$.input[{index}]"
        kind = item.get("type") or ("message" if "role" in item else "item_reference")
        if kind == "message":
            messages.append(_message(item, path))
        elif kind == "function_call":
            call_names[item["call_id"]] = item["name"]
            _append_call(messages, item, path)
        elif kind == "function_call_output":
            messages.append(
                ToolMessage(
                    content=_text(item["output"]),
                    tool_call_id=item["call_id"],
                    name=call_names.get(item["call_id"]),
                )
            )
        elif kind == "mcp_call":
            # A tool the agent ran in an earlier turn (our answers on the OpenAI routes), sent
            # back as history: the model sees the call and its result, as it did then.
            call_id = str(item.get("id") or "")
            _append_call(messages, {**item, "call_id": call_id}, path)
            output = item.get("output")
            if output is None:
                output = item.get("error") or ""
            messages.append(
                ToolMessage(content=str(output), tool_call_id=call_id, name=item["name"])
            )
        elif kind == "item_reference":
            # The state store replaces references by the items before the protocol runs;
            # one left here names nothing this caller stored.
            raise InvalidBody(f"Item with id '{item.get('id')}' not found.", param=path)
        elif kind not in _SKIPPED_ITEMS:
            raise InvalidBody(f"{path}: input items of type {kind!r} are not supported", param=path)
    return messages


def _message(item: Mapping[str, Any], path: str) -> BaseMessage:
    role = item["role"]
    content = item["content"]
    if role == "assistant":
        return AIMessage(_text(content))
    if role in ("system", "developer"):
        return SystemMessage(_text(content))
    if isinstance(content, str):
        return HumanMessage(content)
    return HumanMessage(
        [_user_part(part, f"{path}.content[{i}]") for i, part in enumerate(content)]
    )


def _user_part(part: Mapping[str, Any], path: str) -> str | dict[str, Any]:
    """A Responses input part in the Chat Completions form the chat model understands."""
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        if not part.get("image_url"):
            raise InvalidBody(
                f"{path}: images by file_id are not supported; send image_url (a URL or a "
                "data: URL).",
                param=path,
            )
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {key: part[key] for key in ("file_data", "file_id", "filename") if part.get(key)}
        return {"type": "file", "file": file}
    raise InvalidBody(f"{path}: content parts of type {kind!r} are not supported", param=path)


def _append_call(messages: list[BaseMessage], item: Mapping[str, Any], path: str) -> None:
    try:
        arguments = orjson.loads(item["arguments"] or "{}")
    except orjson.JSONDecodeError:
        raise InvalidBody(f"{path}.arguments: not valid JSON", param=f"{path}.arguments") from None
    if not isinstance(arguments, dict):
        # A tool's arguments are named: the model (and LangChain) need a JSON object.
        raise InvalidBody(f"{path}.arguments: must be a JSON object", param=f"{path}.arguments")
    call = ToolCall(name=item["name"], args=arguments, id=item["call_id"], type="tool_call")
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage):
        # Parallel calls, or an assistant message followed by its calls: one message.
        last.tool_calls.append(call)
    else:
        messages.append(AIMessage(content="", tool_calls=[call]))


def _text(content: Any) -> str:
    """The text of string content, or of a list of text parts."""
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text") or part.get("refusal") or "")
        for part in content
        if isinstance(part, Mapping)
    )


def chat_tools(tools: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Responses function tools → the Chat Completions form (`function` nested)."""
    converted = []
    for tool in tools or ():
        if tool.get("type") != "function":
            continue
        function = {
            key: tool[key]
            for key in ("name", "description", "parameters", "strict")
            if tool.get(key) is not None
        }
        converted.append({"type": "function", "function": function})
    return converted


def allowed_tools(tools: list[dict[str, Any]], choice: Any) -> list[dict[str, Any]]:
    """The client's tools the model may call: with `tool_choice: {"type": "allowed_tools",
    "tools": [...]}` only those named (a Chat Completions upstream knows no such choice, so
    the others are not offered at all; a call to one is then no client tool and never goes
    back to the client)."""
    if not (isinstance(choice, Mapping) and choice.get("type") == "allowed_tools"):
        return tools
    names = {
        str(tool.get("name"))
        for tool in choice.get("tools") or ()
        if isinstance(tool, Mapping) and tool.get("type") == "function"
    }
    return [tool for tool in tools if tool["function"].get("name") in names]


def chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        # Among the tools offered (only the allowed ones): "auto" or "required".
        return "required" if choice.get("mode") == "required" else "auto"
    return choice


def model_params(body: Mapping[str, Any]) -> dict[str, Any]:
    params = {
        key: body[key]
        for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty")
        if body.get(key) is not None
    }
    if effort := (body.get("reasoning") or {}).get("effort"):
        # Chat Completions' name for it (OpenAI-compatible servers and Databricks endpoints).
        params["reasoning_effort"] = effort
    if body.get("max_output_tokens") is not None:
        params["max_tokens"] = body["max_output_tokens"]
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_object":
        params["response_format"] = {"type": "json_object"}
    elif text_format.get("type") == "json_schema":
        schema = {
            key: text_format[key]
            for key in ("name", "schema", "strict", "description")
            if key in text_format
        }
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    return params
