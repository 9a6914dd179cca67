"""A fake Databricks workspace host: OAuth (M2M) token endpoint and a serving endpoint.

databricks-sdk discovers the OIDC endpoints, obtains client-credentials tokens from it and
the service calls `/serving-endpoints/chat/completions` with the bearer token, which is
checked against the tokens this workspace issued (or the personal access token).
"""

from __future__ import annotations

import base64
import itertools

from aiohttp import web

from tests.fakes.openai_server import FakeOpenAI

PAT = "dapi-test-personal-access-token"
CLIENT_ID = "sp-client-id"
CLIENT_SECRET = "sp-client-secret"


class FakeWorkspace:
    def __init__(self, *, token_lifetime_s: int = 3600) -> None:
        self.token_lifetime_s = token_lifetime_s
        self.issued: list[str] = []
        self._counter = itertools.count(1)
        self.serving = FakeOpenAI(path_prefix="/serving-endpoints", check_auth=self._authorised)

    def app(self) -> web.Application:
        app = self.serving.app()
        app.router.add_get("/.well-known/databricks-config", self._host_metadata)
        app.router.add_get("/oidc/.well-known/oauth-authorization-server", self._discovery)
        app.router.add_post("/oidc/v1/token", self._token)
        return app

    def _authorised(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        # Only the newest token is valid: a client that does not refresh fails.
        current = [*self.issued[-1:], PAT]
        return scheme == "Bearer" and token in current

    async def _host_metadata(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return web.json_response({"oidc_endpoint": f"{base}/oidc", "workspace_id": "1234"})

    async def _discovery(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return web.json_response(
            {
                "authorization_endpoint": f"{base}/oidc/v1/authorize",
                "token_endpoint": f"{base}/oidc/v1/token",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = await request.post()
        if request.headers.get("Authorization") != f"Basic {expected}" or (
            form.get("grant_type") != "client_credentials"
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"oauth-token-{next(self._counter)}"
        self.issued.append(token)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime_s}
        )
