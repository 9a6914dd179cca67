"""One error hierarchy, rendered to the OpenAI error envelope in exactly one place.

    ServiceError                      500 server_error       (anything we did not foresee)
    ├── ClientError                   400 invalid_request_error
    │   ├── InvalidJSON               400
    │   ├── InvalidBody               400  (schema failure; param = JSON path)
    │   ├── AuthenticationRequired    401 authentication_error
    │   ├── PermissionDenied          403 permission_error
    │   ├── NotFound                  404
    │   ├── MethodNotAllowed          405
    │   ├── RequestTimeout            408  (the body did not arrive in BODY_READ_TIMEOUT_SECONDS)
    │   ├── Conflict                  409  (a conversation another request is extending)
    │   ├── PayloadTooLarge           413
    │   └── UnsupportedMediaType      415
    ├── Overloaded                    503 server_error       (Retry-After)
    ├── ServerShuttingDown            503 server_error       (draining after SIGTERM)
    ├── DeadlineExceeded              504 server_error       (REQUEST_DEADLINE_SECONDS)
    ├── RunCancelled                  (in-band only)         (a background run cancelled)
    ├── TooManyRuns                   429 rate_limit_error   (BACKGROUND_RUNS_PER_WORKER)
    ├── (agent_http_error)            4xx/5xx                (the agent's own code chose it)
    └── UpstreamError                 502 server_error       (the model endpoint failed)
        ├── UpstreamAuthError         502                    (it refused our credentials)
        ├── UpstreamRateLimited       429 rate_limit_error   (Retry-After passed on)
        └── UpstreamTimeout           504

Client errors describe the client's own input. Server errors (5xx) carry a generic message
and the request id; the detail goes to the log, never to the client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = "internal_error"
    default_message: ClassVar[str] = "The server failed to handle the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}
        super().__init__(self.message)

    def to_envelope(self, request_id: str | None) -> dict[str, Any]:
        """The OpenAI error body: all four keys present, `code` a string or null."""
        message = self.message
        if request_id:
            message = f"{message} (request id: {request_id})"
        return {
            "error": {
                "message": message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class ClientError(ServiceError):
    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"
    default_message = "The request is invalid."


class InvalidJSON(ClientError):
    default_code = "invalid_json"
    default_message = "The request body is not valid JSON."


class InvalidBody(ClientError):
    default_code = "invalid_value"


class AuthenticationRequired(ClientError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"
    default_message = "A valid API key is required: send it as 'Authorization: Bearer <key>'."


class PermissionDenied(ClientError):
    status = 403
    error_type = "permission_error"
    default_code = "permission_denied"
    default_message = "This request is not allowed."


class NotFound(ClientError):
    status = 404
    default_code = "not_found"
    default_message = "No such route."


class MethodNotAllowed(ClientError):
    status = 405
    default_code = "method_not_allowed"


class RequestTimeout(ClientError):
    status = 408
    default_code = "request_timeout"


class Conflict(ClientError):
    status = 409
    default_code = "conflict"


class PayloadTooLarge(ClientError):
    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    default_code = "unsupported_media_type"
    default_message = "The request body must be JSON: send 'Content-Type: application/json'."


class Overloaded(ServiceError):
    status = 503
    default_code = "overloaded"
    default_message = "The server is busy; retry shortly."


class ServerShuttingDown(ServiceError):
    status = 503
    default_code = "server_shutting_down"
    default_message = "The server is shutting down; retry on another instance."


class DeadlineExceeded(ServiceError):
    status = 504
    default_code = "deadline_exceeded"
    default_message = "The agent did not finish within the request deadline."


class RunCancelled(ServiceError):
    """A background run stopped by `POST /v1/responses/{id}/cancel`: never an HTTP status of
    its own, only the run's ending (status `cancelled`)."""

    status = 409
    error_type = "invalid_request_error"
    default_code = "response_cancelled"
    default_message = "The response was cancelled."


class RunNotResumable(ServiceError):
    """A background run taken over from a worker that died (or stopped) cannot go on from
    its last checkpoint: it ends `failed`, saying why (BACKGROUND_RESUME=checkpoint)."""

    status = 500
    default_code = "worker_lost"
    default_message = "The worker running this response stopped and the run cannot be resumed."


class TooManyRuns(ServiceError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "too_many_background_runs"
    default_message = "This worker holds its limit of background runs; retry shortly."


# Errors with which the server itself stopped a run (not a failure of the agent or the model).
RUN_STOPPED = (DeadlineExceeded, ServerShuttingDown, RunCancelled)


class UpstreamError(ServiceError):
    status = 502
    default_code = "upstream_error"
    default_message = "The model endpoint failed to answer."


class UpstreamAuthError(UpstreamError):
    default_code = "upstream_authentication_failed"
    default_message = (
        "The model endpoint refused the agent's credentials; check the server's model "
        "endpoint configuration."
    )


class UpstreamRateLimited(UpstreamError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "upstream_rate_limited"
    default_message = "The model endpoint is rate limiting the agent; retry later."


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"
    default_message = "The model endpoint did not answer in time."


# The error type and code OpenAI's envelope uses for a status an agent's own code raised.
_AGENT_STATUSES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "unauthenticated"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", "invalid_value"),
    429: ("rate_limit_error", "rate_limited"),
}
_agent_error_classes: dict[int, type[ServiceError]] = {}


def agent_http_error(status: int, message: str | None) -> ServiceError:
    """The error for an HTTP status the agent's own code raised (FastAPI's `HTTPException`,
    aiohttp's `HTTPForbidden`, ...): that status in our envelope. A client error keeps the
    agent's message, which it wrote for the client; a server error gets the generic one."""
    if not 400 <= status <= 599:
        return ServiceError()
    kind = _agent_error_classes.get(status)
    if kind is None:
        error_type, code = _AGENT_STATUSES.get(
            status,
            ("server_error", "agent_error")
            if status >= 500
            else ("invalid_request_error", "invalid_request"),
        )
        attributes = {"status": status, "error_type": error_type, "default_code": code}
        base = ClientError if status < 500 else ServiceError
        kind = _agent_error_classes[status] = type(f"AgentHTTP{status}", (base,), attributes)
    return kind(message if status < 500 else None)
