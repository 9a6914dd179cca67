"""The bundled JSON Schemas: request contracts, and the shapes of what the server sends.

Valid request bodies come from the OpenAI and MLflow documentation (multi-turn tool calling,
image parts, Responses function_call/function_call_output round trips, ChatAgent tool
conversations). Invalid bodies pin the JSON path and message the client gets in the 400
envelope. The response, chunk and event schemas are checked against objects built with the
OpenAI SDK's and MLflow's own pydantic types, so they agree with what real clients parse.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_error import ResponseError
from openai.types.responses.response_function_tool_call_output_item import (
    ResponseFunctionToolCallOutputItem,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import BaseModel

from agent_service.schemas import SchemaProblem, SchemaSet, bundled

JSON = dict[str, Any]

CHAT_REQUEST = "agent-v1-chat.request"
CHAT_RESPONSE = "agent-v1-chat.response"
CHAT_CHUNK = "agent-v1-chat.chunk"
AGENT_REQUEST = "agent-v2-chat.request"
AGENT_RESPONSE = "agent-v2-chat.response"
AGENT_CHUNK = "agent-v2-chat.chunk"
RESPONSES_REQUEST = "agent-v1-responses.request"
RESPONSES_RESPONSE = "agent-v1-responses.response"
RESPONSES_EVENT = "agent-v1-responses.event"
ERROR = "error"

EXPECTED_NAMES = frozenset(
    {
        "common",
        CHAT_REQUEST,
        CHAT_RESPONSE,
        CHAT_CHUNK,
        AGENT_REQUEST,
        AGENT_RESPONSE,
        AGENT_CHUNK,
        RESPONSES_REQUEST,
        RESPONSES_RESPONSE,
        RESPONSES_EVENT,
        ERROR,
        "ui-feedback.request",
        "conversation-create.request",
        "conversation-update.request",
        "conversation-items.request",
        "stored-objects",
    }
)

NUMPY_REASON = "mlflow.types.agent/responses import numpy, which mlflow-skinny does not install"


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return bundled()


def _dump(model: BaseModel) -> JSON:
    """What a pydantic client type serialises to, None fields included."""
    dumped: JSON = model.model_dump(mode="json", exclude_none=False)
    return dumped


def _drop(document: JSON, *path: str | int) -> JSON:
    """A deep copy of `document` without the key at `path`."""
    result = copy.deepcopy(document)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return result


def _set(document: JSON, *path: str | int, value: object) -> JSON:
    """A deep copy of `document` with `value` at `path`."""
    result = copy.deepcopy(document)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def _assert_valid(schemas: SchemaSet, name: str, instance: object) -> None:
    problem = schemas.first_problem(name, instance)
    assert problem is None, f"{name}: {problem}"


def _assert_problem(
    schemas: SchemaSet, name: str, instance: object, json_path: str, fragment: str
) -> None:
    problem = schemas.first_problem(name, instance)
    assert isinstance(problem, SchemaProblem), f"{name} accepted {instance!r}"
    assert problem.json_path == json_path, problem
    assert fragment in problem.message, problem
    assert problem.message.startswith("the request body" if json_path == "$" else json_path)


# ---------------------------------------------------------------------------------------------
# The set itself
# ---------------------------------------------------------------------------------------------


def test_every_schema_is_bundled(schemas: SchemaSet) -> None:
    assert schemas.names == EXPECTED_NAMES


@pytest.mark.parametrize(
    ("name", "body"),
    [
        pytest.param(CHAT_REQUEST, {"messages": [{"role": "user", "content": "hi"}]}, id="chat"),
        pytest.param(AGENT_REQUEST, {"messages": [{"role": "user", "content": "hi"}]}, id="agent"),
        pytest.param(RESPONSES_REQUEST, {"input": "hi"}, id="responses"),
    ],
)
def test_request_schemas_accept_unknown_top_level_fields(
    schemas: SchemaSet, name: str, body: JSON
) -> None:
    _assert_valid(schemas, name, {**body, "some_future_field": {"x": [1, 2]}, "n_ctx": 5})


# ---------------------------------------------------------------------------------------------
# agent/v1/chat requests
# ---------------------------------------------------------------------------------------------

WEATHER_PARAMETERS: JSON = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"}
    },
    "required": ["location"],
    "additionalProperties": False,
}

CHAT_TOOL_CONVERSATION: JSON = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "developer", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What's the weather like in Paris and Bogotá today?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_12345xyz",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location":"Paris, France"}',
                    },
                },
                {
                    "id": "call_67890abc",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location":"Bogotá, Colombia"}',
                    },
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_12345xyz", "content": "15 degrees Celsius"},
        {
            "role": "tool",
            "tool_call_id": "call_67890abc",
            "content": [{"type": "text", "text": "18 degrees Celsius"}],
        },
        {"role": "assistant", "content": "Paris: 15 °C; Bogotá: 18 °C."},
        {"role": "user", "content": "Thanks!", "name": "alice"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get current temperature for a given location.",
                "parameters": WEATHER_PARAMETERS,
                "strict": True,
            },
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}

VALID_CHAT_REQUESTS = [
    pytest.param({"messages": [{"role": "user", "content": "Hello!"}]}, id="minimal"),
    pytest.param(CHAT_TOOL_CONVERSATION, id="multi-turn-tool-calls"),
    pytest.param(
        {
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Describe images."}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What's in this image?"},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "https://upload.wikimedia.org/boardwalk.jpg",
                                "detail": "high",
                            },
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                    ],
                },
            ],
            "max_tokens": 300,
        },
        id="image-parts",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "UklGRg==", "format": "wav"},
                        },
                        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:..."}},
                        {"type": "file", "file": {"file_id": "file-abc123"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "refusal", "refusal": "I can't help with that."}],
                },
                {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            ]
        },
        id="audio-file-refusal-parts",
    ),
    pytest.param(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            ]
        },
        id="assistant-omits-content-with-tool-calls",
    ),
    pytest.param(
        {
            "messages": [{"role": "user", "content": "Count to 3"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0.2,
            "top_p": 0.9,
            "n": 1,
            "max_completion_tokens": 64,
            "stop": ["\n\n", "END"],
            "frequency_penalty": -0.5,
            "presence_penalty": 2,
            "seed": 42,
            "user": "user-1234",
            "metadata": {"tenant": "acme", "ticket": "T-1"},
            "logprobs": True,
            "top_logprobs": 2,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        id="sampling-and-stream-options",
    ),
    pytest.param(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": None,
            "top_p": None,
            "n": None,
            "max_tokens": None,
            "stop": None,
            "stream": None,
            "stream_options": None,
            "seed": None,
            "metadata": None,
            "logprobs": None,
            "custom_inputs": None,
        },
        id="openai-nullables",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": "hi"}], "stop": "STOP", "tool_choice": "none"},
        id="stop-string",
    ),
    pytest.param(
        {
            "messages": [{"role": "user", "content": "Extract the event."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "calendar_event",
                    "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "strict": True,
                },
            },
        },
        id="response-format-json-schema",
    ),
    pytest.param(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"},
        },
        id="response-format-json-object",
    ),
    pytest.param(
        {
            "messages": [{"role": "user", "content": "What is MLflow?"}],
            "temperature": 0.5,
            "max_tokens": 100,
            "stop": ["\n"],
            "n": 1,
            "stream": False,
            "top_k": 40,
            "custom_inputs": {"session": "s-1", "flags": {"verbose": True}},
            "databricks_options": {"return_trace": True},
        },
        id="mlflow-chatmodel-additions",
    ),
    pytest.param(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "no-params_v2"}}],
        },
        id="tool-without-parameters",
    ),
]


@pytest.mark.parametrize("body", VALID_CHAT_REQUESTS)
def test_valid_chat_requests(schemas: SchemaSet, body: JSON) -> None:
    _assert_valid(schemas, CHAT_REQUEST, body)


def test_replayed_sdk_assistant_messages_are_valid(schemas: SchemaSet) -> None:
    """Clients append `completion.choices[0].message` (all its None fields included)."""
    tool_turn: JSON = _chat_completion_tool_calls()["choices"][0]["message"]
    assert tool_turn["content"] is None
    assert tool_turn["function_call"] is None
    text_turn = _dump(ChatCompletionMessage(role="assistant", content="It is 15 °C.", refusal=None))
    assert text_turn["tool_calls"] is None
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            tool_turn,
            {"role": "tool", "tool_call_id": "call_abc", "content": "15"},
            text_turn,
        ]
    }
    _assert_valid(schemas, CHAT_REQUEST, body)


USER = {"role": "user", "content": "hi"}

INVALID_CHAT_REQUESTS = [
    # Part types the chat model layer cannot read are refused at the edge, not by a 500 later.
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "future_part", "x": 1}]}]},
        "$.messages[0].content[0].type",
        "is not one of",
        id="unknown-part-type",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
                    ],
                }
            ]
        },
        "$.messages[0].content[0].input_audio.data",
        "should be non-empty",
        id="empty-audio",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"filename": "a"}}]}]},
        "$.messages[0].content[0].file",
        "file_data or file_id",
        id="file-without-data",
    ),
    pytest.param([], "$", "is not of type 'object'", id="body-not-object"),
    pytest.param({}, "$", "'messages' is a required property", id="no-messages"),
    pytest.param({"messages": []}, "$.messages", "should be non-empty", id="empty-messages"),
    pytest.param({"messages": "hi"}, "$.messages", "is not of type 'array'", id="messages-string"),
    pytest.param(
        {"messages": [{"role": "user", "content": 5}]},
        "$.messages[0].content",
        "5 is not of type 'string', 'array'",
        id="content-number",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": None}]},
        "$.messages[0].content",
        "None is not of type 'string', 'array'",
        id="user-content-null",
    ),
    pytest.param(
        {"messages": [{"role": "user"}]},
        "$.messages[0]",
        "'content' is a required property",
        id="user-content-missing",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "x"}]},
        "$.messages[0]",
        "'tool_call_id' is a required property",
        id="tool-without-tool-call-id",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "tool_call_id": "call_1"}]},
        "$.messages[0]",
        "'content' is a required property",
        id="tool-without-content",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "content": None}]},
        "$.messages[0].content",
        "null only when the assistant message has tool_calls",
        id="assistant-null-content-without-tool-calls",
    ),
    pytest.param(
        {"messages": [{"role": "assistant"}]},
        "$.messages[0]",
        "'content' is a required property",
        id="assistant-without-content-or-tool-calls",
    ),
    pytest.param(
        {"messages": [{"content": "x"}]},
        "$.messages[0]",
        "'role' is a required property",
        id="no-role",
    ),
    pytest.param(
        {"messages": [{"role": "bot", "content": "x"}]},
        "$.messages[0].role",
        "'bot' is not one of",
        id="unknown-role",
    ),
    pytest.param(
        {"messages": ["hi"]}, "$.messages[0]", "is not of type 'object'", id="message-string"
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": ["hi"]}]},
        "$.messages[0].content[0]",
        "is not of type 'object'",
        id="part-string",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        "$.messages[0].content[0]",
        "'type' is a required property",
        id="part-without-type",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": 3}]}]},
        "$.messages[0].content[0].type",
        "3 is not one of",
        id="part-type-number",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "$.messages[0].content[0]",
        "'text' is a required property",
        id="text-part-without-text",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
        "$.messages[0].content[0].text",
        "1 is not of type 'string'",
        id="text-part-text-number",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
        "$.messages[0].content[0].image_url",
        "is not of type 'object'",
        id="image-url-string",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "4k"}}],
                }
            ]
        },
        "$.messages[0].content[0].image_url.detail",
        "'4k' is not one of",
        id="image-detail",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}],
                }
            ]
        },
        "$.messages[0].tool_calls[0].function",
        "'arguments' is a required property",
        id="tool-call-without-arguments",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                }
            ]
        },
        "$.messages[0].tool_calls[0].function.arguments",
        "{} is not of type 'string'",
        id="tool-call-arguments-object",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]}]},
        "$.messages[0].tool_calls[0]",
        "'id' is a required property",
        id="tool-call-without-id",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "x"}}],
                }
            ]
        },
        "$.messages[0].tool_calls[0].type",
        "'custom' is not one of ['function']",
        id="tool-call-custom",
    ),
    pytest.param(
        {"messages": [USER], "temperature": 3},
        "$.temperature",
        "3 is greater than the maximum of 2",
        id="temperature-too-high",
    ),
    pytest.param(
        {"messages": [USER], "temperature": "hot"},
        "$.temperature",
        "is not of type 'number', 'null'",
        id="temperature-string",
    ),
    pytest.param(
        {"messages": [USER], "top_p": 1.5},
        "$.top_p",
        "greater than the maximum of 1",
        id="top-p-too-high",
    ),
    pytest.param(
        {"messages": [USER], "top_k": 0}, "$.top_k", "less than the minimum of 1", id="top-k"
    ),
    pytest.param({"messages": [USER], "n": 2}, "$.n", "only n=1 is supported", id="n-2"),
    pytest.param(
        {"messages": [USER], "max_tokens": 0},
        "$.max_tokens",
        "less than the minimum of 1",
        id="max-tokens-0",
    ),
    pytest.param(
        {"messages": [USER], "max_completion_tokens": 1.5},
        "$.max_completion_tokens",
        "is not of type 'integer', 'null'",
        id="max-completion-tokens-float",
    ),
    pytest.param(
        {"messages": [USER], "stop": ["a", "b", "c", "d", "e"]},
        "$.stop",
        "is too long",
        id="stop-five",
    ),
    pytest.param({"messages": [USER], "stop": [5]}, "$.stop[0]", "not of type", id="stop-int"),
    pytest.param(
        {"messages": [USER], "stream": "yes"},
        "$.stream",
        "'yes' is not of type 'boolean', 'null'",
        id="stream-string",
    ),
    pytest.param(
        {"messages": [USER], "stream_options": {"include_usage": "yes"}},
        "$.stream_options.include_usage",
        "is not of type 'boolean'",
        id="include-usage-string",
    ),
    pytest.param(
        {"messages": [USER], "frequency_penalty": -3},
        "$.frequency_penalty",
        "less than the minimum of -2",
        id="frequency-penalty",
    ),
    pytest.param(
        {"messages": [USER], "parallel_tool_calls": "no"},
        "$.parallel_tool_calls",
        "is not of type 'boolean'",
        id="parallel-tool-calls",
    ),
    pytest.param(
        {"messages": [USER], "tool_choice": "any"},
        "$.tool_choice",
        'tool_choice must be "none", "auto", "required"',
        id="tool-choice-unknown-string",
    ),
    pytest.param(
        {"messages": [USER], "tool_choice": {"type": "function"}},
        "$.tool_choice",
        "'function' is a required property",
        id="tool-choice-without-function",
    ),
    pytest.param(
        {"messages": [USER], "tool_choice": {"type": "function", "function": {}}},
        "$.tool_choice.function",
        "'name' is a required property",
        id="tool-choice-without-name",
    ),
    pytest.param(
        {"messages": [USER], "tools": {"type": "function"}},
        "$.tools",
        "is not of type 'array'",
        id="tools-object",
    ),
    pytest.param(
        {"messages": [USER], "tools": [{"type": "function"}]},
        "$.tools[0]",
        "'function' is a required property",
        id="tool-without-function",
    ),
    pytest.param(
        {"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "x"}}]},
        "$.tools[0].type",
        "'custom' is not one of ['function']",
        id="tool-custom",
    ),
    pytest.param(
        {"messages": [USER], "tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "$.tools[0].function.name",
        "does not match",
        id="tool-name-space",
    ),
    pytest.param(
        {"messages": [USER], "tools": [{"type": "function", "function": {"name": "x" * 65}}]},
        "$.tools[0].function.name",
        "does not match",
        id="tool-name-too-long",
    ),
    pytest.param(
        {
            "messages": [USER],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}],
        },
        "$.tools[0].function.parameters",
        "is not of type 'object'",
        id="tool-parameters-string",
    ),
    pytest.param(
        {"messages": [USER], "metadata": {f"k{i}": "v" for i in range(17)}},
        "$.metadata",
        "at most 16",
        id="metadata-17-keys",
    ),
    pytest.param(
        {"messages": [USER], "metadata": {"k" * 65: "v"}},
        "$.metadata",
        "is too long",
        id="metadata-key-too-long",
    ),
    pytest.param(
        {"messages": [USER], "metadata": {"k": "v" * 513}},
        "$.metadata.k",
        "is too long",
        id="metadata-value-too-long",
    ),
    pytest.param(
        {"messages": [USER], "metadata": {"k": 1}},
        "$.metadata.k",
        "1 is not of type 'string'",
        id="metadata-value-number",
    ),
    pytest.param(
        {"messages": [USER], "response_format": {"type": "xml"}},
        "$.response_format.type",
        "'xml' is not one of",
        id="response-format-type",
    ),
    pytest.param(
        {"messages": [USER], "response_format": {"type": "json_schema"}},
        "$.response_format",
        "'json_schema' is a required property",
        id="response-format-json-schema-missing",
    ),
    pytest.param(
        {"messages": [USER], "custom_inputs": ["x"]},
        "$.custom_inputs",
        "is not of type 'object', 'null'",
        id="custom-inputs-list",
    ),
    pytest.param(
        {"messages": [USER], "top_logprobs": 21},
        "$.top_logprobs",
        "greater than the maximum of 20",
        id="top-logprobs",
    ),
]


@pytest.mark.parametrize(("body", "json_path", "fragment"), INVALID_CHAT_REQUESTS)
def test_invalid_chat_requests(
    schemas: SchemaSet, body: object, json_path: str, fragment: str
) -> None:
    _assert_problem(schemas, CHAT_REQUEST, body, json_path, fragment)


def test_long_values_are_not_echoed_in_full(schemas: SchemaSet) -> None:
    body = {"messages": [USER], "metadata": {"k": "v" * 5000}}
    problem = schemas.first_problem(CHAT_REQUEST, body)
    assert problem is not None
    assert problem.json_path == "$.metadata.k"
    assert len(problem.message) < 400


# ---------------------------------------------------------------------------------------------
# agent/v2/chat (ChatAgent) requests
# ---------------------------------------------------------------------------------------------

AGENT_TOOL_CONVERSATION: JSON = {
    "messages": [
        {"role": "system", "content": "You are a helpful calculator."},
        {"role": "user", "content": "What is 6 * 7?"},
        {
            "role": "assistant",
            "content": "",
            "id": "msg-1",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "multiply", "arguments": '{"a": 6, "b": 7}'},
                }
            ],
        },
        {
            "role": "tool",
            "content": "42",
            "name": "multiply",
            "tool_call_id": "call_1",
            "id": "msg-2",
        },
        {"role": "assistant", "content": "6 * 7 = 42", "id": "msg-3"},
        {"role": "user", "content": "And 6 * 8?"},
    ],
    "context": {"conversation_id": "conv-123", "user_id": "alice@example.com"},
    "custom_inputs": {"max_steps": 3},
    "stream": False,
}

VALID_AGENT_REQUESTS = [
    pytest.param({"messages": [{"role": "user", "content": "Hello!"}]}, id="mlflow-input-example"),
    pytest.param(AGENT_TOOL_CONVERSATION, id="tool-conversation"),
    pytest.param(
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}],
                },
                {"role": "tool", "content": "found", "name": "lookup", "tool_call_id": "c1"},
            ],
            "stream": True,
        },
        id="null-content-with-tool-calls-and-default-type",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": "Summarise the attachment",
                    "attachments": {"report.txt": "https://example.com/report.txt"},
                    "name": "alice",
                    "id": None,
                    "tool_calls": None,
                    "tool_call_id": None,
                }
            ],
            "context": {"conversation_id": "c", "trace_parent": "extra keys are allowed"},
            "custom_inputs": None,
            "stream": None,
        },
        id="attachments-and-nulls",
    ),
    pytest.param(
        {"messages": [{"role": "developer", "content": "be brief"}, USER], "context": {}},
        id="any-role-string",
    ),
]


@pytest.mark.parametrize("body", VALID_AGENT_REQUESTS)
def test_valid_agent_requests(schemas: SchemaSet, body: JSON) -> None:
    _assert_valid(schemas, AGENT_REQUEST, body)


INVALID_AGENT_REQUESTS = [
    pytest.param({}, "$", "'messages' is a required property", id="no-messages"),
    pytest.param({"messages": []}, "$.messages", "should be non-empty", id="empty-messages"),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        "$.messages[0].content",
        "is not of type 'string', 'null'",
        id="content-list-rejected",
    ),
    pytest.param(
        {"messages": [{"role": "user"}]},
        "$.messages[0]",
        "'content' is a required property",
        id="neither-content-nor-tool-calls",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": None}]},
        "$.messages[0].content",
        "a message needs content (a string) or tool_calls",
        id="null-content-without-tool-calls",
    ),
    pytest.param(
        {"messages": [{"content": "hi"}]},
        "$.messages[0]",
        "'role' is a required property",
        id="no-role",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
        "$.messages[0]",
        "'name' is a required property",
        id="tool-without-name",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "42", "name": "multiply"}]},
        "$.messages[0]",
        "'tool_call_id' is a required property",
        id="tool-without-tool-call-id",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "42", "name": "", "tool_call_id": "c1"}]},
        "$.messages[0].name",
        "should be non-empty",
        id="tool-empty-name",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"type": "function", "function": {"name": "f", "arguments": ""}}
                    ],
                }
            ]
        },
        "$.messages[0].tool_calls[0]",
        "'id' is a required property",
        id="tool-call-without-id",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}]},
        "$.messages[0].tool_calls[0]",
        "'function' is a required property",
        id="tool-call-without-function",
    ),
    pytest.param(
        {
            "messages": [
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}
            ]
        },
        "$.messages[0].tool_calls[0].function",
        "'arguments' is a required property",
        id="tool-call-without-arguments",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": "x", "attachments": {"a": 1}}]},
        "$.messages[0].attachments.a",
        "1 is not of type 'string'",
        id="attachment-value-number",
    ),
    pytest.param(
        {"messages": [USER], "context": {"conversation_id": 5}},
        "$.context.conversation_id",
        "5 is not of type 'string', 'null'",
        id="conversation-id-number",
    ),
    pytest.param(
        {"messages": [USER], "context": "conv-1"},
        "$.context",
        "is not of type 'object', 'null'",
        id="context-string",
    ),
    pytest.param(
        {"messages": [USER], "custom_inputs": "x"},
        "$.custom_inputs",
        "is not of type 'object', 'null'",
        id="custom-inputs-string",
    ),
    pytest.param(
        {"messages": [USER], "stream": 1},
        "$.stream",
        "is not of type 'boolean', 'null'",
        id="stream-number",
    ),
]


@pytest.mark.parametrize(("body", "json_path", "fragment"), INVALID_AGENT_REQUESTS)
def test_invalid_agent_requests(
    schemas: SchemaSet, body: object, json_path: str, fragment: str
) -> None:
    _assert_problem(schemas, AGENT_REQUEST, body, json_path, fragment)


# ---------------------------------------------------------------------------------------------
# agent/v1/responses requests
# ---------------------------------------------------------------------------------------------

RESPONSES_WEATHER_TOOL: JSON = {
    "type": "function",
    "name": "get_weather",
    "description": "Get current temperature for a given location.",
    "parameters": WEATHER_PARAMETERS,
    "strict": True,
}

VALID_RESPONSES_REQUESTS = [
    pytest.param(
        {"model": "gpt-4.1", "input": "Tell me a three sentence bedtime story about a unicorn."},
        id="plain-string-input",
    ),
    pytest.param({"input": [{"role": "user", "content": "Hello!"}]}, id="mlflow-input-example"),
    pytest.param(
        {
            "model": "gpt-4.1",
            "instructions": "Answer with the tool's result.",
            "input": [
                {"role": "user", "content": "What is the weather like in Paris today?"},
                {
                    "type": "function_call",
                    "id": "fc_12345xyz",
                    "call_id": "call_12345xyz",
                    "name": "get_weather",
                    "arguments": '{"location":"Paris, France"}',
                    "status": "completed",
                },
                {
                    "type": "function_call_output",
                    "call_id": "call_12345xyz",
                    "output": '{"temperature_c": 15}',
                },
            ],
            "tools": [RESPONSES_WEATHER_TOOL],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
        },
        id="function-call-round-trip",
    ),
    pytest.param(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is in this image?"},
                        {
                            "type": "input_image",
                            "image_url": "https://upload.wikimedia.org/boardwalk.jpg",
                            "detail": "auto",
                        },
                        {"type": "input_image", "file_id": "file-abc123"},
                        {"type": "input_file", "file_id": "file-6F2ksmvXxt4VdoqmHRw6kL"},
                        {
                            "type": "input_file",
                            "filename": "draconomicon.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0=",
                        },
                    ],
                }
            ]
        },
        id="image-and-file-parts",
    ),
    pytest.param(
        {
            "input": [
                {"type": "message", "role": "system", "content": "Be terse."},
                {"type": "message", "role": "developer", "content": "Use metric units."},
                {"role": "user", "content": "Hi"},
                {
                    "type": "message",
                    "id": "msg_abc",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "text": "Hello!",
                            "annotations": [],
                            "logprobs": [],
                        },
                        {"type": "refusal", "refusal": "But not that."},
                    ],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "Hi again"}]},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "The user greets."}],
                    "encrypted_content": None,
                },
                {"type": "item_reference", "id": "msg_prev"},
                {"id": "msg_prev_2"},
                {"role": "user", "content": "Bye"},
            ]
        },
        id="history-with-output-items-reasoning-and-references",
    ),
    pytest.param(
        {
            "input": [
                {"role": "user", "content": "Look at this chart"},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "render_chart",
                    "arguments": "{}",
                },
                {
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": [
                        {"type": "input_text", "text": "rendered"},
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                    ],
                    "status": "completed",
                },
            ]
        },
        id="function-call-output-parts",
    ),
    pytest.param(
        {
            "input": [
                {"role": "user", "content": "search the web"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}},
                {"type": "mcp_approval_response", "approval_request_id": "a1", "approve": True},
            ],
            "tools": [
                {"type": "web_search_preview"},
                {"type": "mcp", "server_label": "deepwiki", "server_url": "https://x"},
                {**RESPONSES_WEATHER_TOOL, "parameters": None, "strict": None},
            ],
            "tool_choice": {"type": "function", "name": "get_weather"},
        },
        id="other-item-and-tool-types",
    ),
    pytest.param(
        {
            "model": "o4-mini",
            "input": "Plan a trip",
            "instructions": None,
            "temperature": 0.7,
            "top_p": 1,
            "max_output_tokens": 512,
            "metadata": {"tenant": "acme"},
            "previous_response_id": None,
            "store": False,
            "reasoning": {"effort": "low", "summary": "auto"},
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "trip",
                    "schema": {"type": "object"},
                    "strict": True,
                },
                "verbosity": "low",
            },
            "truncation": "auto",
            "user": "user-1234",
            "background": False,
            "stream": True,
            "stream_options": {"include_obfuscation": False},
            "include": ["reasoning.encrypted_content"],
            "context": {"conversation_id": "conv-1", "user_id": "alice"},
            "custom_inputs": {"k": "v"},
        },
        id="all-documented-fields",
    ),
]


@pytest.mark.parametrize("body", VALID_RESPONSES_REQUESTS)
def test_valid_responses_requests(schemas: SchemaSet, body: JSON) -> None:
    _assert_valid(schemas, RESPONSES_REQUEST, body)


INVALID_RESPONSES_REQUESTS = [
    pytest.param({}, "$", "'input' is a required property", id="no-input"),
    pytest.param({"input": 3}, "$.input", "3 is not of type 'string', 'array'", id="input-number"),
    pytest.param({"input": None}, "$.input", "is not of type", id="input-null"),
    pytest.param({"input": []}, "$.input", "should be non-empty", id="input-empty-list"),
    pytest.param({"input": ["hi"]}, "$.input[0]", "is not of type 'object'", id="item-string"),
    pytest.param(
        {"input": [{"role": "user"}]},
        "$.input[0]",
        "'content' is a required property",
        id="message-without-content",
    ),
    pytest.param(
        {"input": [{"content": "hi"}]},
        "$.input[0]",
        "'role' is a required property",
        id="message-without-role",
    ),
    pytest.param(
        {"input": [{"role": "tool", "content": "x"}]},
        "$.input[0].role",
        "'tool' is not one of",
        id="message-role-tool",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": 5}]},
        "$.input[0].content",
        "5 is not of type 'string', 'array'",
        id="message-content-number",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        "$.input[0].content[0].type",
        "'text' is not one of",
        id="chat-completions-part-type",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        "$.input[0].content[0]",
        "'text' is a required property",
        id="input-text-without-text",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": ["a"]}]}]},
        "$.input[0].content[0].text",
        "is not of type 'string'",
        id="input-text-text-list",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
        "$.input[0].content[0]",
        "an input_image part needs an image_url or a file_id",
        id="input-image-without-source",
    ),
    pytest.param(
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": 5}]}]},
        "$.input[0].content[0].image_url",
        "5 is not of type 'string'",
        id="input-image-url-number",
    ),
    pytest.param(
        {"input": [{"role": "assistant", "content": [{"type": "output_text", "annotations": []}]}]},
        "$.input[0].content[0]",
        "'text' is a required property",
        id="output-text-without-text",
    ),
    pytest.param(
        {"input": [{"role": "assistant", "content": [{"type": "refusal"}]}]},
        "$.input[0].content[0]",
        "'refusal' is a required property",
        id="refusal-without-refusal",
    ),
    pytest.param(
        {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        "$.input[0]",
        "'call_id' is a required property",
        id="function-call-without-call-id",
    ),
    pytest.param(
        {"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
        "$.input[0]",
        "'name' is a required property",
        id="function-call-without-name",
    ),
    pytest.param(
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
        "$.input[0].arguments",
        "{} is not of type 'string'",
        id="function-call-arguments-object",
    ),
    pytest.param(
        {
            "input": [
                {
                    "type": "function_call",
                    "call_id": "c",
                    "name": "f",
                    "arguments": "{}",
                    "status": "done",
                }
            ]
        },
        "$.input[0].status",
        "'done' is not one of",
        id="function-call-status",
    ),
    pytest.param(
        {"input": [{"type": "function_call_output", "output": "42"}]},
        "$.input[0]",
        "'call_id' is a required property",
        id="function-call-output-without-call-id",
    ),
    pytest.param(
        {"input": [{"type": "function_call_output", "call_id": "c"}]},
        "$.input[0]",
        "'output' is a required property",
        id="function-call-output-without-output",
    ),
    pytest.param(
        {"input": [{"type": "function_call_output", "call_id": "c", "output": 42}]},
        "$.input[0].output",
        "42 is not of type 'string', 'array'",
        id="function-call-output-number",
    ),
    pytest.param(
        {
            "input": [
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "output_text", "text": "x"}],
                }
            ]
        },
        "$.input[0].output[0].type",
        "'output_text' is not one of",
        id="function-call-output-part-type",
    ),
    pytest.param(
        {"input": [{"type": "reasoning", "id": "rs_1"}]},
        "$.input[0]",
        "'summary' is a required property",
        id="reasoning-without-summary",
    ),
    pytest.param(
        {"input": [{"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text"}]}]},
        "$.input[0].summary[0]",
        "'text' is a required property",
        id="reasoning-summary-without-text",
    ),
    pytest.param(
        {"input": [{"type": "item_reference"}]},
        "$.input[0]",
        "'id' is a required property",
        id="item-reference-without-id",
    ),
    pytest.param(
        {"input": [{"type": 5}]},
        "$.input[0].type",
        "is not of type 'string'",
        id="item-type-number",
    ),
    pytest.param(
        {"input": "x", "instructions": ["be terse"]},
        "$.instructions",
        "is not of type 'string', 'null'",
        id="instructions-list",
    ),
    pytest.param(
        {"input": "x", "tools": [{"type": "function"}]},
        "$.tools[0]",
        "'name' is a required property",
        id="function-tool-without-name",
    ),
    pytest.param(
        {"input": "x", "tools": [{"name": "f"}]},
        "$.tools[0]",
        "'type' is a required property",
        id="tool-without-type",
    ),
    pytest.param(
        {"input": "x", "tools": [{"type": "function", "name": "f g"}]},
        "$.tools[0].name",
        "does not match",
        id="function-tool-bad-name",
    ),
    pytest.param(
        {"input": "x", "tools": [{**RESPONSES_WEATHER_TOOL, "parameters": []}]},
        "$.tools[0].parameters",
        "is not of type",
        id="function-tool-parameters-list",
    ),
    pytest.param(
        {"input": "x", "tool_choice": "any"},
        "$.tool_choice",
        'tool_choice must be "none", "auto", "required"',
        id="tool-choice-unknown-string",
    ),
    pytest.param(
        {"input": "x", "tool_choice": {"type": "function"}},
        "$.tool_choice",
        "'name' is a required property",
        id="tool-choice-function-without-name",
    ),
    pytest.param(
        {"input": "x", "temperature": 2.5},
        "$.temperature",
        "greater than the maximum of 2",
        id="temperature",
    ),
    pytest.param(
        {"input": "x", "max_output_tokens": 0},
        "$.max_output_tokens",
        "less than the minimum of 1",
        id="max-output-tokens",
    ),
    pytest.param(
        {"input": "x", "metadata": {"k": {"nested": 1}}},
        "$.metadata.k",
        "is not of type 'string'",
        id="metadata-nested",
    ),
    pytest.param(
        {"input": "x", "truncation": "sometimes"},
        "$.truncation",
        "'sometimes' is not one of",
        id="truncation",
    ),
    pytest.param(
        {"input": "x", "text": {"format": {"type": "json_schema"}}},
        "$.text.format",
        "'name' is a required property",
        id="text-format-json-schema-without-name",
    ),
    pytest.param(
        {"input": "x", "include": "reasoning.encrypted_content"},
        "$.include",
        "is not of type 'array', 'null'",
        id="include-string",
    ),
    pytest.param(
        {"input": "x", "context": {"user_id": 7}},
        "$.context.user_id",
        "7 is not of type 'string', 'null'",
        id="context-user-id-number",
    ),
    pytest.param(
        {"input": "x", "stream": "true"},
        "$.stream",
        "is not of type 'boolean', 'null'",
        id="stream-string",
    ),
]


@pytest.mark.parametrize(("body", "json_path", "fragment"), INVALID_RESPONSES_REQUESTS)
def test_invalid_responses_requests(
    schemas: SchemaSet, body: object, json_path: str, fragment: str
) -> None:
    _assert_problem(schemas, RESPONSES_REQUEST, body, json_path, fragment)


# ---------------------------------------------------------------------------------------------
# Agreement with MLflow's request types (skipped where mlflow-skinny lacks numpy)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", VALID_AGENT_REQUESTS)
def test_mlflow_accepts_valid_agent_requests(body: JSON) -> None:
    pytest.importorskip("numpy", reason=NUMPY_REASON)
    from mlflow.types.agent import ChatAgentRequest

    ChatAgentRequest(**body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"messages": [{"role": "user", "content": None}]}, id="null-content-no-tool-calls"
        ),
        pytest.param({"messages": [{"role": "user"}]}, id="neither-content-nor-tool-calls"),
        pytest.param(
            {"messages": [{"role": "tool", "content": "x", "tool_call_id": "c"}]},
            id="tool-without-name",
        ),
        pytest.param(
            {"messages": [{"role": "tool", "content": "x", "name": "f"}]},
            id="tool-without-tool-call-id",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            id="content-list",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]},
                ]
            },
            id="tool-call-without-id",
        ),
    ],
)
def test_schema_and_mlflow_both_reject_agent_requests(schemas: SchemaSet, body: JSON) -> None:
    assert schemas.first_problem(AGENT_REQUEST, body) is not None
    pytest.importorskip("numpy", reason=NUMPY_REASON)
    from mlflow.types.agent import ChatAgentRequest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ChatAgentRequest(**body)


def test_mlflow_documented_items_are_valid_responses_input(schemas: SchemaSet) -> None:
    pytest.importorskip("numpy", reason=NUMPY_REASON)
    from mlflow.types import responses

    items: list[JSON] = [
        *responses.RESPONSES_AGENT_INPUT_EXAMPLE["input"],
        responses.create_text_output_item("Hello!", id="msg_1"),
        responses.create_reasoning_item("rs_1", "thinking about it"),
        responses.create_function_call_item("fc_1", "call_1", "get_weather", '{"city": "Paris"}'),
        responses.create_function_call_output_item("call_1", "15 degrees"),
        {"role": "user", "content": "thanks"},
    ]
    body: JSON = {"input": items, "context": {"conversation_id": "c"}, "custom_inputs": {}}
    _assert_valid(schemas, RESPONSES_REQUEST, body)
    responses.ResponsesAgentRequest(**body)


# ---------------------------------------------------------------------------------------------
# agent/v1/chat responses and chunks
# ---------------------------------------------------------------------------------------------


def _chat_completion_text() -> JSON:
    return _dump(
        ChatCompletion(
            id="chatcmpl-123",
            object="chat.completion",
            created=1_741_569_952,
            model="agent",
            choices=[
                Choice(
                    index=0,
                    finish_reason="stop",
                    logprobs=None,
                    message=ChatCompletionMessage(
                        role="assistant", content="Hello! How can I help?", refusal=None
                    ),
                )
            ],
            usage=CompletionUsage(prompt_tokens=19, completion_tokens=10, total_tokens=29),
        )
    )


def _chat_completion_tool_calls() -> JSON:
    return _dump(
        ChatCompletion(
            id="chatcmpl-456",
            object="chat.completion",
            created=1_741_569_952,
            model="agent",
            choices=[
                Choice(
                    index=0,
                    finish_reason="tool_calls",
                    logprobs=None,
                    message=ChatCompletionMessage(
                        role="assistant",
                        content=None,
                        refusal=None,
                        tool_calls=[
                            ChatCompletionMessageFunctionToolCall(
                                id="call_abc",
                                type="function",
                                function=Function(
                                    name="get_weather", arguments='{"location": "Paris"}'
                                ),
                            )
                        ],
                    ),
                )
            ],
        )
    )


def _chunk(**delta: Any) -> JSON:
    return _dump(
        ChatCompletionChunk(
            id="chatcmpl-123",
            object="chat.completion.chunk",
            created=1_741_569_952,
            model="agent",
            choices=[ChunkChoice(index=0, delta=ChoiceDelta(**delta), finish_reason=None)],
        )
    )


def _usage_chunk() -> JSON:
    return _dump(
        ChatCompletionChunk(
            id="chatcmpl-123",
            object="chat.completion.chunk",
            created=1_741_569_952,
            model="agent",
            choices=[],
            usage=CompletionUsage(prompt_tokens=19, completion_tokens=10, total_tokens=29),
        )
    )


def _tool_fragment(**fragment: Any) -> JSON:
    function = fragment.pop("function", None)
    call = ChoiceDeltaToolCall(
        **fragment,
        function=None if function is None else ChoiceDeltaToolCallFunction(**function),
    )
    return _chunk(tool_calls=[call])


@pytest.mark.parametrize(
    ("name", "instance"),
    [
        pytest.param(CHAT_RESPONSE, _chat_completion_text(), id="completion-text"),
        pytest.param(CHAT_RESPONSE, _chat_completion_tool_calls(), id="completion-tool-calls"),
        pytest.param(
            CHAT_RESPONSE,
            {**_chat_completion_text(), "custom_outputs": {"trace_id": "tr-1"}, "usage": None},
            id="completion-custom-outputs",
        ),
        pytest.param(CHAT_CHUNK, _chunk(role="assistant", content=""), id="chunk-first"),
        pytest.param(CHAT_CHUNK, _chunk(content="Hel"), id="chunk-content"),
        pytest.param(
            CHAT_CHUNK,
            _tool_fragment(
                index=0, id="call_abc", type="function", function={"name": "f", "arguments": ""}
            ),
            id="chunk-tool-call-first-fragment",
        ),
        pytest.param(
            CHAT_CHUNK,
            _tool_fragment(index=0, function={"arguments": '{"loc'}),
            id="chunk-tool-call-later-fragment",
        ),
        pytest.param(
            CHAT_CHUNK,
            _set(_chunk(), "choices", 0, "finish_reason", value="stop"),
            id="chunk-last",
        ),
        pytest.param(CHAT_CHUNK, _usage_chunk(), id="chunk-usage"),
    ],
)
def test_openai_sdk_chat_objects_match(schemas: SchemaSet, name: str, instance: JSON) -> None:
    _assert_valid(schemas, name, instance)


@pytest.mark.parametrize(
    ("name", "instance", "json_path", "fragment"),
    [
        pytest.param(
            CHAT_RESPONSE,
            _drop(_chat_completion_text(), "choices", 0, "logprobs"),
            "$.choices[0]",
            "'logprobs' is a required property",
            id="logprobs-key-missing",
        ),
        pytest.param(
            CHAT_RESPONSE,
            _drop(_chat_completion_text(), "choices", 0, "message", "refusal"),
            "$.choices[0].message",
            "'refusal' is a required property",
            id="refusal-key-missing",
        ),
        pytest.param(
            CHAT_RESPONSE,
            _drop(_chat_completion_text(), "created"),
            "$",
            "'created' is a required property",
            id="created-missing",
        ),
        pytest.param(
            CHAT_RESPONSE,
            _set(_chat_completion_text(), "object", value="chat.completion.chunk"),
            "$.object",
            "'chat.completion' was expected",
            id="object-wrong",
        ),
        pytest.param(
            CHAT_RESPONSE,
            _set(_chat_completion_text(), "choices", 0, "finish_reason", value=None),
            "$.choices[0].finish_reason",
            "None is not one of",
            id="finish-reason-null",
        ),
        pytest.param(
            CHAT_RESPONSE,
            _set(_chat_completion_text(), "choices", 0, "finish_reason", value="tool_calls"),
            "$.choices[0].message.tool_calls",
            "None is not of type 'array'",
            id="finish-tool-calls-without-tool-calls",
        ),
        pytest.param(
            CHAT_RESPONSE,
            _drop(_chat_completion_text(), "usage", "total_tokens"),
            "$.usage",
            "'total_tokens' is a required property",
            id="usage-incomplete",
        ),
        pytest.param(
            CHAT_RESPONSE,
            _set(_chat_completion_text(), "created", value="2025-01-01"),
            "$.created",
            "is not of type 'integer'",
            id="created-string",
        ),
        pytest.param(
            CHAT_CHUNK,
            _drop(_chunk(content="x"), "choices", 0, "finish_reason"),
            "$.choices[0]",
            "'finish_reason' is a required property",
            id="chunk-finish-reason-key-missing",
        ),
        pytest.param(
            CHAT_CHUNK,
            _set(_usage_chunk(), "usage", value=None),
            "$.usage",
            "is not of type 'object'",
            id="usage-chunk-without-usage",
        ),
        pytest.param(
            CHAT_CHUNK,
            _tool_fragment(index=0, id="call_abc", function={"arguments": ""}),
            "$.choices[0].delta.tool_calls[0].type",
            "'function' was expected",
            id="first-fragment-without-type",
        ),
        pytest.param(
            CHAT_CHUNK,
            _tool_fragment(index=0, id="call_abc", type="function", function={"arguments": ""}),
            "$.choices[0].delta.tool_calls[0].function.name",
            "None is not of type 'string'",
            id="first-fragment-without-name",
        ),
        pytest.param(
            CHAT_CHUNK,
            _drop(
                _tool_fragment(index=0, function={"arguments": "{}"}),
                *("choices", 0, "delta", "tool_calls", 0, "index"),
            ),
            "$.choices[0].delta.tool_calls[0]",
            "'index' is a required property",
            id="fragment-without-index",
        ),
    ],
)
def test_chat_output_schemas_catch_missing_fields(
    schemas: SchemaSet, name: str, instance: JSON, json_path: str, fragment: str
) -> None:
    problem = schemas.first_problem(name, instance)
    assert problem is not None, instance
    assert problem.json_path == json_path, problem
    assert fragment in problem.message, problem


# ---------------------------------------------------------------------------------------------
# agent/v2/chat responses and chunks (MLflow ChatAgentResponse / ChatAgentChunk)
# ---------------------------------------------------------------------------------------------

# ChatAgentResponse(...).model_dump(mode="json", exclude_none=False), written out so the
# check runs without numpy; test_mlflow_chat_agent_objects_match builds the real objects.
AGENT_RESPONSE_DUMP: JSON = {
    "messages": [
        {
            "role": "assistant",
            "content": None,
            "name": None,
            "id": "m1",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "multiply", "arguments": '{"a": 6, "b": 7}'},
                }
            ],
            "tool_call_id": None,
            "attachments": None,
        },
        {
            "role": "tool",
            "content": "42",
            "name": "multiply",
            "id": "m2",
            "tool_calls": None,
            "tool_call_id": "call_1",
            "attachments": None,
        },
        {
            "role": "assistant",
            "content": "6 * 7 = 42",
            "name": None,
            "id": "m3",
            "tool_calls": None,
            "tool_call_id": None,
            "attachments": None,
        },
    ],
    "finish_reason": "stop",
    "custom_outputs": {"steps": 2},
    "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
}

AGENT_CHUNK_DUMP: JSON = {
    "delta": {
        "role": "assistant",
        "content": "6 * 7",
        "name": None,
        "id": "m3",
        "tool_calls": None,
        "tool_call_id": None,
        "attachments": None,
    },
    "finish_reason": None,
    "custom_outputs": None,
    "usage": None,
}


@pytest.mark.parametrize(
    ("name", "instance"),
    [
        pytest.param(AGENT_RESPONSE, AGENT_RESPONSE_DUMP, id="response"),
        pytest.param(
            AGENT_RESPONSE,
            {"messages": [{"role": "assistant", "content": "hi", "id": "m1"}]},
            id="response-minimal",
        ),
        pytest.param(AGENT_CHUNK, AGENT_CHUNK_DUMP, id="chunk"),
        pytest.param(
            AGENT_CHUNK,
            {"delta": AGENT_RESPONSE_DUMP["messages"][1], "usage": {"total_tokens": 42}},
            id="chunk-tool-result",
        ),
    ],
)
def test_chat_agent_output_shapes(schemas: SchemaSet, name: str, instance: JSON) -> None:
    _assert_valid(schemas, name, instance)


@pytest.mark.parametrize(
    ("name", "instance", "json_path", "fragment"),
    [
        pytest.param(
            AGENT_RESPONSE,
            _drop(AGENT_RESPONSE_DUMP, "messages", 2, "id"),
            "$.messages[2]",
            "'id' is a required property",
            id="message-without-id",
        ),
        pytest.param(
            AGENT_RESPONSE,
            _set(AGENT_RESPONSE_DUMP, "messages", 2, "id", value=None),
            "$.messages[2].id",
            "None is not of type 'string'",
            id="message-null-id",
        ),
        pytest.param(
            AGENT_RESPONSE,
            _set(AGENT_RESPONSE_DUMP, "messages", 1, "name", value=None),
            "$.messages[1].name",
            "None is not of type 'string'",
            id="tool-result-without-name",
        ),
        pytest.param(
            AGENT_RESPONSE,
            _set(AGENT_RESPONSE_DUMP, "messages", 0, "tool_calls", value=None),
            "$.messages[0].content",
            "a message needs content",
            id="neither-content-nor-tool-calls",
        ),
        pytest.param(
            AGENT_RESPONSE,
            {"messages": []},
            "$.messages",
            "should be non-empty",
            id="no-messages",
        ),
        pytest.param(
            AGENT_CHUNK,
            _drop(AGENT_CHUNK_DUMP, "delta", "id"),
            "$.delta",
            "'id' is a required property",
            id="chunk-without-id",
        ),
        pytest.param(
            AGENT_CHUNK,
            _set(AGENT_CHUNK_DUMP, "delta", "content", value=["x"]),
            "$.delta.content",
            "is not of type 'string', 'null'",
            id="chunk-content-list",
        ),
    ],
)
def test_chat_agent_output_schemas_catch_missing_fields(
    schemas: SchemaSet, name: str, instance: JSON, json_path: str, fragment: str
) -> None:
    problem = schemas.first_problem(name, instance)
    assert problem is not None, instance
    assert problem.json_path == json_path, problem
    assert fragment in problem.message, problem


def test_mlflow_chat_agent_objects_match(schemas: SchemaSet) -> None:
    pytest.importorskip("numpy", reason=NUMPY_REASON)
    from mlflow.types.agent import ChatAgentChunk, ChatAgentResponse

    response = ChatAgentResponse(**AGENT_RESPONSE_DUMP)
    assert _dump(response) == AGENT_RESPONSE_DUMP
    _assert_valid(schemas, AGENT_RESPONSE, _dump(response))
    chunk = ChatAgentChunk(**AGENT_CHUNK_DUMP)
    assert _dump(chunk) == AGENT_CHUNK_DUMP
    _assert_valid(schemas, AGENT_CHUNK, _dump(chunk))


# ---------------------------------------------------------------------------------------------
# agent/v1/responses response objects and stream events
# ---------------------------------------------------------------------------------------------

RESPONSE_USAGE = ResponseUsage(
    input_tokens=36,
    input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
    output_tokens=87,
    output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    total_tokens=123,
)


ItemStatus = Literal["in_progress", "completed", "incomplete"]


def _message_item(
    status: ItemStatus = "completed", text: str = "It is 15 °C in Paris."
) -> ResponseOutputMessage:
    content: list[ResponseOutputText | ResponseOutputRefusal] = (
        [] if status == "in_progress" else [_output_text(text)]
    )
    return ResponseOutputMessage(
        id="msg_1", type="message", role="assistant", status=status, content=content
    )


def _output_text(text: str) -> ResponseOutputText:
    return ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])


def _function_call_item(
    status: ItemStatus = "completed", arguments: str = '{"city":"Paris"}'
) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id="fc_1",
        type="function_call",
        call_id="call_1",
        name="get_weather",
        arguments=arguments,
        status=status,
    )


def _function_call_output_item() -> ResponseFunctionToolCallOutputItem:
    return ResponseFunctionToolCallOutputItem(
        id="fco_1",
        type="function_call_output",
        call_id="call_1",
        output='{"temperature_c": 15}',
        status="completed",
    )


def _response(status: str = "completed", **overrides: Any) -> Response:
    fields: JSON = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_741_476_542,
        "model": "agent",
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "output": [],
    }
    if status == "completed":
        fields["output"] = [_function_call_item(), _function_call_output_item(), _message_item()]
        fields["usage"] = RESPONSE_USAGE
    fields.update(overrides)
    return Response(**fields)


FAILED_RESPONSE = _response(
    "failed", error=ResponseError(code="server_error", message="The agent failed (req-1).")
)


def _event_sequence() -> list[JSON]:
    """The full text + function call stream of PROTOCOLS §4, built from the SDK's types."""
    events: list[BaseModel] = [
        ResponseCreatedEvent(
            type="response.created", sequence_number=0, response=_response("in_progress")
        ),
        ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            sequence_number=1,
            output_index=0,
            item=_function_call_item("in_progress", arguments=""),
        ),
        ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta",
            sequence_number=2,
            item_id="fc_1",
            output_index=0,
            delta='{"city":',
        ),
        ResponseFunctionCallArgumentsDoneEvent(
            type="response.function_call_arguments.done",
            sequence_number=3,
            item_id="fc_1",
            output_index=0,
            arguments='{"city":"Paris"}',
        ),
        ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            sequence_number=4,
            output_index=0,
            item=_function_call_item(),
        ),
        ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            sequence_number=5,
            output_index=1,
            item=_function_call_output_item(),
        ),
        ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            sequence_number=6,
            output_index=2,
            item=_message_item("in_progress"),
        ),
        ResponseContentPartAddedEvent(
            type="response.content_part.added",
            sequence_number=7,
            item_id="msg_1",
            output_index=2,
            content_index=0,
            part=_output_text(""),
        ),
        ResponseTextDeltaEvent(
            type="response.output_text.delta",
            sequence_number=8,
            item_id="msg_1",
            output_index=2,
            content_index=0,
            delta="It is 15 °C",
            logprobs=[],
        ),
        ResponseTextDoneEvent(
            type="response.output_text.done",
            sequence_number=9,
            item_id="msg_1",
            output_index=2,
            content_index=0,
            text="It is 15 °C in Paris.",
            logprobs=[],
        ),
        ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            sequence_number=10,
            output_index=2,
            item=_message_item(),
        ),
        ResponseCompletedEvent(type="response.completed", sequence_number=11, response=_response()),
    ]
    return [_dump(event) for event in events]


EVENTS = _event_sequence()
ERROR_EVENT = _dump(
    ResponseErrorEvent(
        type="error",
        sequence_number=5,
        code="server_error",
        message="The agent failed (req-1).",
        param=None,
    )
)
FAILED_EVENT = _dump(
    ResponseFailedEvent(type="response.failed", sequence_number=6, response=FAILED_RESPONSE)
)


@pytest.mark.parametrize(
    ("name", "instance"),
    [
        pytest.param(RESPONSES_RESPONSE, _dump(_response()), id="response-completed"),
        pytest.param(
            RESPONSES_RESPONSE, _dump(_response("in_progress")), id="response-in-progress"
        ),
        pytest.param(RESPONSES_RESPONSE, _dump(FAILED_RESPONSE), id="response-failed"),
        pytest.param(
            RESPONSES_RESPONSE,
            {**_dump(_response()), "custom_outputs": {"trace_id": "tr-1"}},
            id="response-custom-outputs",
        ),
        *(
            pytest.param(RESPONSES_EVENT, event, id=f"{event['sequence_number']}-{event['type']}")
            for event in EVENTS
        ),
        pytest.param(RESPONSES_EVENT, ERROR_EVENT, id="error"),
        pytest.param(RESPONSES_EVENT, FAILED_EVENT, id="response-failed-event"),
        pytest.param(
            RESPONSES_EVENT,
            {"type": "response.reasoning_summary_text.delta", "sequence_number": 3, "delta": "x"},
            id="unlisted-event-type",
        ),
    ],
)
def test_openai_sdk_responses_objects_match(schemas: SchemaSet, name: str, instance: JSON) -> None:
    _assert_valid(schemas, name, instance)


def test_event_sequence_numbers_count_up() -> None:
    assert [event["sequence_number"] for event in EVENTS] == list(range(len(EVENTS)))


def _completed_event() -> JSON:
    return copy.deepcopy(EVENTS[-1])


@pytest.mark.parametrize(
    ("name", "instance", "json_path", "fragment"),
    [
        pytest.param(
            RESPONSES_RESPONSE,
            _drop(_dump(_response()), "incomplete_details"),
            "$",
            "'incomplete_details' is a required property",
            id="incomplete-details-missing",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _drop(_dump(_response()), "output", 2, "id"),
            "$.output[2]",
            "'id' is a required property",
            id="message-item-without-id",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _set(_dump(_response()), "output", 0, "id", value=None),
            "$.output[0].id",
            "None is not of type 'string'",
            id="function-call-item-null-id",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _drop(_dump(_response()), "output", 1, "status"),
            "$.output[1]",
            "'status' is a required property",
            id="function-call-output-item-without-status",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _drop(_dump(_response()), "output", 2, "content", 0, "annotations"),
            "$.output[2].content[0]",
            "'annotations' is a required property",
            id="output-text-without-annotations",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _drop(_dump(_response()), "usage", "input_tokens_details", "cached_tokens"),
            "$.usage.input_tokens_details",
            "'cached_tokens' is a required property",
            id="usage-without-cached-tokens",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _set(_dump(_response()), "status", value="done"),
            "$.status",
            "'done' is not one of",
            id="status-unknown",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _set(_dump(FAILED_RESPONSE), "error", value=None),
            "$.error",
            "None is not of type 'object'",
            id="failed-without-error",
        ),
        pytest.param(
            RESPONSES_RESPONSE,
            _set(_dump(FAILED_RESPONSE), "error", "code", value=500),
            "$.error.code",
            "500 is not one of",
            id="error-code-number",
        ),
        pytest.param(
            RESPONSES_EVENT,
            _drop(EVENTS[8], "sequence_number"),
            "$",
            "'sequence_number' is a required property",
            id="event-without-sequence-number",
        ),
        pytest.param(
            RESPONSES_EVENT,
            _set(EVENTS[8], "sequence_number", value=-1),
            "$.sequence_number",
            "less than the minimum of 0",
            id="negative-sequence-number",
        ),
        pytest.param(
            RESPONSES_EVENT,
            _drop(EVENTS[8], "logprobs"),
            "$",
            "'logprobs' is a required property",
            id="text-delta-without-logprobs",
        ),
        pytest.param(
            RESPONSES_EVENT,
            {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "x"},
            "$",
            "is a required property",
            id="mlflow-helper-text-delta",
        ),
        pytest.param(
            RESPONSES_EVENT,
            _set(EVENTS[10], "item", "status", value="in_progress"),
            "$.item.status",
            "'in_progress' is not one of",
            id="item-done-still-in-progress",
        ),
        pytest.param(
            RESPONSES_EVENT,
            _set(_completed_event(), "response", "status", value="in_progress"),
            "$.response.status",
            "'in_progress' is not one of ['completed']",
            id="completed-event-in-progress",
        ),
        pytest.param(
            RESPONSES_EVENT,
            {
                "type": "error",
                "sequence_number": 5,
                "error": {"code": "server_error", "message": "boom"},
            },
            "$",
            "'code' is a required property",
            id="nested-error-event",
        ),
        pytest.param(
            RESPONSES_EVENT,
            _set(FAILED_EVENT, "response", "error", value=None),
            "$.response.error",
            "None is not of type 'object'",
            id="failed-event-without-error",
        ),
    ],
)
def test_responses_output_schemas_catch_missing_fields(
    schemas: SchemaSet, name: str, instance: JSON, json_path: str, fragment: str
) -> None:
    problem = schemas.first_problem(name, instance)
    assert problem is not None, instance
    assert problem.json_path == json_path, problem
    assert fragment in problem.message, problem


# ---------------------------------------------------------------------------------------------
# The error envelope
# ---------------------------------------------------------------------------------------------

ENVELOPE: JSON = {
    "error": {
        "message": "$.messages: [] should be non-empty",
        "type": "invalid_request_error",
        "param": "$.messages",
        "code": None,
    }
}


@pytest.mark.parametrize(
    "instance",
    [
        pytest.param(ENVELOPE, id="schema-failure"),
        pytest.param(
            {
                "error": {
                    "message": "Internal error (request id req-1).",
                    "type": "server_error",
                    "param": None,
                    "code": "internal_error",
                }
            },
            id="server-error",
        ),
    ],
)
def test_valid_error_envelopes(schemas: SchemaSet, instance: JSON) -> None:
    _assert_valid(schemas, ERROR, instance)


@pytest.mark.parametrize(
    ("instance", "json_path", "fragment"),
    [
        pytest.param({"error": "boom"}, "$.error", "is not of type 'object'", id="string-error"),
        pytest.param(
            _drop(ENVELOPE, "error", "param"),
            "$.error",
            "'param' is a required property",
            id="param-missing",
        ),
        pytest.param(
            _drop(ENVELOPE, "error", "code"),
            "$.error",
            "'code' is a required property",
            id="code-missing",
        ),
        pytest.param(
            _set(ENVELOPE, "error", "code", value=400),
            "$.error.code",
            "400 is not of type 'string', 'null'",
            id="numeric-code",
        ),
        pytest.param(
            _set(ENVELOPE, "error", "detail", value="stack trace"),
            "$.error",
            "Additional properties are not allowed",
            id="extra-key",
        ),
        pytest.param(
            _set(ENVELOPE, "error", "message", value=""),
            "$.error.message",
            "should be non-empty",
            id="empty-message",
        ),
    ],
)
def test_invalid_error_envelopes(
    schemas: SchemaSet, instance: JSON, json_path: str, fragment: str
) -> None:
    problem = schemas.first_problem(ERROR, instance)
    assert problem is not None, instance
    assert problem.json_path == json_path, problem
    assert fragment in problem.message, problem


def test_schema_files_are_two_space_indented() -> None:
    from agent_service.schemas import schemas_dir

    for path in sorted(schemas_dir().glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n", path
