"""Who may call: bearer keys (self-hosting), the forwarded user token (Databricks Apps), and
which browser origins may call (CORS)."""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from agent_service import errors
from agent_service.keys import CALLER, METRICS, SETTINGS, USER_TOKEN
from agent_service.state.identity import owner_from_api_key, owner_from_forwarded_user

# Routes that must answer without credentials: load balancers and orchestrators probe them.
OPEN_PATHS = frozenset({"/health", "/ready", "/"})
# The chat page's static files: the page must load before it can ask for a key.
OPEN_PREFIXES = ("/ui/assets/",)
_CORS_HEADERS = "authorization, content-type, x-request-id, x-mlflow-return-trace-id"
_CORS_EXPOSED = "x-request-id, x-mlflow-trace-id, retry-after"
_CORS_MAX_AGE = "600"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights for allowed origins; `add_cors_headers` marks the responses."""
    allowed = request.app[SETTINGS].cors_allow_origins
    origin = request.headers.get(hdrs.ORIGIN)
    if (
        allowed
        and request.method == hdrs.METH_OPTIONS
        and origin
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    ):
        if origin not in allowed and "*" not in allowed:
            raise errors.PermissionDenied(f"Origin {origin!r} is not allowed.")
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, OPTIONS",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: _CORS_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: _CORS_MAX_AGE,
            },
        )
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every response to an allowed origin, errors and streams too."""
    allowed = request.app[SETTINGS].cors_allow_origins
    origin = request.headers.get(hdrs.ORIGIN)
    if not allowed or not origin or (origin not in allowed and "*" not in allowed):
        return
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = _CORS_EXPOSED
    response.headers.add(hdrs.VARY, "Origin")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer keys when configured (self-hosting); Databricks Apps authenticates callers
    itself and forwards the user's own token, which we keep for this request only."""
    if token := request.headers.get("X-Forwarded-Access-Token"):
        request[USER_TOKEN] = token
    keys = request.app[SETTINGS].api_keys
    if not keys or request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES):
        if user := _forwarded_user(request):
            request[CALLER] = owner_from_forwarded_user(user)
        return await handler(request)
    scheme, _, presented = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer" or not _matches_any(presented.strip(), keys):
        request.app[METRICS].rejections.labels("unauthenticated").inc()
        raise errors.AuthenticationRequired(headers={"WWW-Authenticate": "Bearer"})
    request[CALLER] = owner_from_api_key(presented.strip())
    return await handler(request)


def _forwarded_user(request: web.Request) -> str | None:
    """The user Databricks Apps signed in (its proxy sets these headers on every request).
    Trusted only without API keys: with keys, the key says who the caller is."""
    return request.headers.get("X-Forwarded-Email") or request.headers.get("X-Forwarded-User")


def _matches_any(presented: str, keys: tuple[str, ...]) -> bool:
    # Compare with every key, in constant time each, so timing reveals neither a key nor
    # which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched
