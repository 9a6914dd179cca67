"""A fake Databricks workspace host: OAuth (M2M) token endpoint, a serving endpoint, and the
MLflow calls that store and read experiment traces.

databricks-sdk discovers the OIDC endpoints, obtains client-credentials tokens from it and
the service calls `/serving-endpoints/chat/completions` with the bearer token, which is
checked against the tokens this workspace issued (or the personal access token).

Traces as the workspace keeps them: `StartTraceV3` stores the trace info and names where its
spans go (`mlflow.artifactLocation`); the spans (`traces.json`) are uploaded to and read from
a signed URL (here on this host) that the upload and download credential calls hand out.
Every call is counted by route (`calls`).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections import Counter
from typing import Any

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
        self.calls: Counter[str] = Counter()
        # Trace infos by trace id (MLflow's JSON form) and their uploaded spans.
        self.trace_infos: dict[str, dict[str, Any]] = {}
        self.trace_data: dict[str, bytes] = {}

    def app(self) -> web.Application:
        app = self.serving.app()
        app.router.add_get("/.well-known/databricks-config", self._host_metadata)
        app.router.add_get("/oidc/.well-known/oauth-authorization-server", self._discovery)
        app.router.add_post("/oidc/v1/token", self._token)
        app.router.add_post("/api/3.0/mlflow/traces", self._start_trace)
        app.router.add_get("/api/3.0/mlflow/traces/{trace_id}", self._get_trace_info)
        app.router.add_get(
            "/api/2.0/mlflow/traces/{trace_id}/credentials-for-data-{direction}", self._credentials
        )
        app.router.add_put("/signed/traces/{trace_id}/traces.json", self._upload)
        app.router.add_get("/signed/traces/{trace_id}/traces.json", self._download)
        app.middlewares.append(self._count)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        self.calls[resource.canonical if resource is not None else request.path] += 1
        response: web.StreamResponse = await handler(request)
        return response

    def _refused(self, request: web.Request) -> web.Response | None:
        if self._authorised(request.headers.get("Authorization", "")):
            return None
        return web.json_response(
            {"error_code": "UNAUTHENTICATED", "message": "bad token"}, status=401
        )

    async def _start_trace(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        info = (await request.json())["trace"]["trace_info"]
        trace_id = info["trace_id"]
        experiment = info["trace_location"]["mlflow_experiment"]["experiment_id"]
        info.setdefault("tags", {})["mlflow.artifactLocation"] = (
            f"dbfs:/databricks/mlflow-tracking/{experiment}/{trace_id}/artifacts"
        )
        self.trace_infos[trace_id] = info
        return web.json_response({"trace": {"trace_info": info}})

    async def _get_trace_info(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        info = self.trace_infos.get(request.match_info["trace_id"])
        if info is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST"}, status=404)
        return web.json_response({"trace": {"trace_info": info}})

    async def _credentials(self, request: web.Request) -> web.Response:
        if refused := self._refused(request):
            return refused
        trace_id = request.match_info["trace_id"]
        signed = f"{request.scheme}://{request.host}/signed/traces/{trace_id}/traces.json"
        return web.json_response(
            {"credential_info": {"signed_uri": signed, "type": "AWS_PRESIGNED_URL"}}
        )

    async def _upload(self, request: web.Request) -> web.Response:
        self.trace_data[request.match_info["trace_id"]] = await request.read()
        return web.Response()

    async def _download(self, request: web.Request) -> web.Response:
        data = self.trace_data.get(request.match_info["trace_id"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/json")

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        spans: list[dict[str, Any]] = json.loads(self.trace_data[trace_id])["spans"]
        return spans

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
