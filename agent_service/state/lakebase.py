"""Databricks Lakebase: PostgreSQL whose password is a short-lived OAuth token.

databricks-sdk mints the token (the app's own identity: its service principal on Databricks
Apps, or whatever `DATABRICKS_*` credentials resolve to). One token is reused for every new
connection until shortly before it expires; the pool asks for a fresh one when it opens a
connection after that. Open connections stay open when their token expires: Lakebase checks
the token at login only. Minting is blocking HTTP: it runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent_service.settings import DatabricksAuth

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

log = logging.getLogger(__name__)

# A token is replaced this long before it expires: a connection opened with it must finish
# logging in first, and clocks differ.
REFRESH_MARGIN_S = 300.0
# Lakebase tokens live an hour; used when the answer does not say.
ASSUMED_LIFETIME_S = 3600.0


class LakebaseCredentials:
    """The password source of a Lakebase connection pool: `await credentials()`."""

    def __init__(self, client: WorkspaceClient, *, instance: str = "", endpoint: str = "") -> None:
        self._client = client
        self._instance = instance
        self._endpoint = endpoint
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.minted = 0

    @classmethod
    async def connect(
        cls, auth: DatabricksAuth, *, instance: str = "", endpoint: str = ""
    ) -> LakebaseCredentials:
        """Resolve the workspace credentials (network I/O: in a thread)."""
        from databricks.sdk import WorkspaceClient

        def build() -> WorkspaceClient:
            return WorkspaceClient(config=auth.sdk_config())

        client = await asyncio.to_thread(build)
        return cls(client, instance=instance, endpoint=endpoint)

    async def __call__(self) -> str:
        async with self._lock:
            if not self._token or time.time() >= self._expires_at - REFRESH_MARGIN_S:
                self._token, self._expires_at = await asyncio.to_thread(self._mint)
                self.minted += 1
                log.info(
                    "Lakebase: new database credential, valid for %.0fs",
                    self._expires_at - time.time(),
                )
            return self._token

    def _mint(self) -> tuple[str, float]:
        if self._instance:
            credential: Any = self._client.database.generate_database_credential(
                request_id=str(uuid.uuid4()), instance_names=[self._instance]
            )
            expires = _parse_time(credential.expiration_time)
        else:
            credential = self._client.postgres.generate_database_credential(endpoint=self._endpoint)
            expire_time = credential.expire_time
            expires = float(expire_time.ToSeconds()) if expire_time else None
        if not credential.token:
            raise RuntimeError("Databricks returned no database credential")
        return credential.token, expires or time.time() + ASSUMED_LIFETIME_S


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
