"""A fake Databricks workspace that mints Lakebase database credentials.

Both APIs databricks-sdk calls: provisioned instances (`/api/2.0/database/credentials`,
`expiration_time`) and autoscaling endpoints (`/api/2.0/postgres/credentials`,
`expire_time`). Callers authenticate with the workspace's personal access token.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.databricks_workspace import FakeWorkspace


class FakeLakebase(FakeWorkspace):
    def __init__(self, *, credential_lifetime_s: float = 3600) -> None:
        super().__init__()
        self.credential_lifetime_s = credential_lifetime_s
        self.credentials: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self._credential_counter = itertools.count(1)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/api/2.0/database/credentials", self._instance_credential)
        app.router.add_post("/api/2.0/postgres/credentials", self._endpoint_credential)
        return app

    async def _mint(self, request: web.Request) -> tuple[str, str] | None:
        if not self._authorised(request.headers.get("Authorization", "")):
            return None
        self.requests.append({"path": request.path, **await request.json()})
        token = f"lakebase-token-{next(self._credential_counter)}"
        self.credentials.append(token)
        expires = datetime.fromtimestamp(time.time() + self.credential_lifetime_s, tz=UTC)
        return token, expires.strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _instance_credential(self, request: web.Request) -> web.Response:
        minted = await self._mint(request)
        if minted is None:
            return web.json_response({"error_code": "UNAUTHENTICATED"}, status=401)
        return web.json_response({"token": minted[0], "expiration_time": minted[1]})

    async def _endpoint_credential(self, request: web.Request) -> web.Response:
        minted = await self._mint(request)
        if minted is None:
            return web.json_response({"error_code": "UNAUTHENTICATED"}, status=401)
        return web.json_response({"token": minted[0], "expire_time": minted[1]})
