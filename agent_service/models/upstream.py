"""Failures of the model endpoint, translated into our error hierarchy.

langchain-openai raises the OpenAI SDK's exceptions; a connection that breaks in the middle
of a stream can also surface as the HTTP client's own transport error. Anything else that
escapes the agent is a bug of ours and becomes a generic 500.
"""

from __future__ import annotations

import re

import httpx2
import openai

from agent_service.errors import (
    ServiceError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)

# Retry-After is either delta-seconds or an HTTP date; anything else is not passed on.
_RETRY_AFTER = re.compile(r"^(\d{1,6}|[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT)$")


def translate(exc: BaseException) -> ServiceError:
    """The error the client should see for `exc` raised while the agent ran."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return UpstreamTimeout()
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return UpstreamAuthError()
    if isinstance(exc, openai.RateLimitError):
        retry_after = exc.response.headers.get("retry-after", "").strip()
        headers = {"Retry-After": retry_after} if _RETRY_AFTER.match(retry_after) else {}
        return UpstreamRateLimited(headers=headers)
    if isinstance(exc, openai.APIStatusError):
        return UpstreamError(f"The model endpoint answered HTTP {exc.status_code}.")
    if isinstance(exc, openai.APIError | httpx2.TransportError):
        return UpstreamError()
    return ServiceError()
