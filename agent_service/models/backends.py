"""The chat model behind the agent, chosen by settings: offline, OpenAI-compatible, Databricks.

`BACKENDS` maps each `MODEL_BACKEND` value to the function that builds it; a new backend is
one function and one entry (and its name in `settings.BACKENDS`).

Built once per worker (in the app's cleanup context), never per request and never at import.
Anything that can block — databricks-sdk resolving credentials, refreshing an OAuth token —
runs in a thread, so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import openai
import orjson
from langchain_core.language_models import BaseChatModel
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import SecretStr

from agent_service.models.offline import OFFLINE_MODEL_NAME, OfflineChatModel, ScriptedTurn
from agent_service.models.upstream import EndpointChatModel
from agent_service.observability.redaction import redact_uri
from agent_service.settings import ModelBackend, Settings

if TYPE_CHECKING:
    from databricks.sdk.core import Config

log = logging.getLogger(__name__)


class ModelSetupError(RuntimeError):
    """The configured model backend cannot be used; raised at start-up, never per request."""


@dataclass(frozen=True, slots=True)
class ChatModelBackend:
    """The model and how to describe it (logs, /agent/info, traces) without secrets."""

    model: BaseChatModel
    kind: str
    endpoint: str

    async def aclose(self) -> None:
        """Close the model's HTTP connections (when the worker stops)."""
        if isinstance(self.model, BaseChatOpenAI):
            if self.model.root_async_client is not None:
                await self.model.root_async_client.close()
            if self.model.root_client is not None:
                self.model.root_client.close()


async def build_chat_model(settings: Settings) -> ChatModelBackend:
    """The configured backend's model (once per worker: it may resolve credentials)."""
    return await BACKENDS[settings.backend](settings)


async def _offline(settings: Settings) -> ChatModelBackend:
    script = _load_script(settings.offline_script) if settings.offline_script else ()
    model = OfflineChatModel(token_delay_s=settings.offline_token_delay_s, script=script)
    endpoint = OFFLINE_MODEL_NAME + (f" (script: {settings.offline_script})" if script else "")
    return ChatModelBackend(model=model, kind="offline", endpoint=endpoint)


def _load_script(path: str) -> tuple[ScriptedTurn, ...]:
    try:
        turns = orjson.loads(Path(path).read_bytes())
        return tuple(ScriptedTurn.from_json(turn) for turn in turns)
    except (OSError, orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        raise ModelSetupError(
            f"OFFLINE_SCRIPT={path!r}: expected a JSON list of turns like "
            f'[{{"text": "...", "tool_calls": [{{"name": "calculator", '
            f'"arguments": {{"expression": "1+1"}}}}]}}] ({exc})'
        ) from exc


async def _openai_compatible(settings: Settings) -> ChatModelBackend:
    model = _chat_openai(
        settings,
        model=settings.openai_model,
        base_url=settings.openai_base_url or None,
        api_key=SecretStr(settings.openai_api_key or "unused"),
    )
    # Shown in /agent/info, the start-up log and trace metadata: never the URL's password
    # or query string (gateways take keys there too).
    shown = redact_uri(settings.openai_base_url or "https://api.openai.com/v1")
    endpoint = f"{shown} ({settings.openai_model})"
    return ChatModelBackend(model=model, kind="openai", endpoint=endpoint)


async def _databricks(settings: Settings) -> ChatModelBackend:
    auth = settings.databricks
    try:
        config = await asyncio.to_thread(auth.sdk_config)
        token_source = DatabricksToken(config)
        # Fail at start-up rather than at the first request when the credentials are unusable.
        await asyncio.to_thread(token_source)
    except Exception as exc:
        # databricks-sdk masks secrets in its messages (client_secret=***), so its message is
        # safe for the log and says what is wrong.
        raise ModelSetupError(
            f"Databricks credentials for serving endpoint {settings.databricks_endpoint!r} "
            f"could not be used: {exc}"
        ) from exc
    base_url = f"{config.host.rstrip('/')}/serving-endpoints"
    model = _chat_openai(
        settings, model=settings.databricks_endpoint, base_url=base_url, api_key=token_source
    )
    shown = redact_uri(base_url)
    endpoint = f"{shown} ({settings.databricks_endpoint}, auth: {config.auth_type})"
    return ChatModelBackend(model=model, kind="databricks", endpoint=endpoint)


BACKENDS: dict[ModelBackend, Callable[[Settings], Awaitable[ChatModelBackend]]] = {
    "offline": _offline,
    "openai": _openai_compatible,
    "databricks": _databricks,
}


class DatabricksToken:
    """An API-key provider for the OpenAI client: a current bearer token for every request.

    databricks-sdk caches the token and refreshes it shortly before it expires; a refresh is
    a blocking HTTP call. langchain-openai runs a synchronous key provider in its executor on
    the async path, so this never blocks the event loop.
    """

    def __init__(self, config: Config) -> None:
        self._config = config

    def __call__(self) -> str:
        headers = self._config.authenticate()
        authorization = headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise RuntimeError("databricks-sdk returned no bearer token for the serving endpoint")
        return token


def _chat_openai(
    settings: Settings,
    *,
    model: str,
    base_url: str | None,
    api_key: SecretStr | DatabricksToken,
) -> BaseChatOpenAI:
    # The base class, not ChatOpenAI: ChatOpenAI rewrites parameters for OpenAI's own models
    # (max_tokens → max_completion_tokens, system → developer), which serving endpoints and
    # gateways may not accept. We pass on exactly what the client asked for.
    return EndpointChatModel(
        model=model,
        base_url=base_url,
        api_key=api_key,
        # A Timeout object, not a number: langchain-openai shares one HTTP client per base
        # URL and numeric timeout across the whole process, never closed; its connections
        # then outlive the event loop that opened them (another app in the process, as in
        # the tests, gets "Event loop is closed"; evicted, they leak their sockets). With a
        # Timeout it builds a client for this model alone, which `aclose` closes.
        timeout=openai.Timeout(settings.model_timeout_s),
        max_retries=settings.model_max_retries,
        # Ask the endpoint for usage on streams too, so both paths report it.
        stream_usage=True,
        # Chat Completions is what Databricks serving endpoints and most gateways speak.
        use_responses_api=False,
    )
