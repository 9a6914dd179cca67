"""Where conversation state lives: the `STATE_STORE` setting, parsed once at start-up.

    STATE_STORE=sqlite:///agent_state.db         a file next to the app (the default)
    STATE_STORE=sqlite:////var/lib/agent/state.db an absolute path
    STATE_STORE=postgresql://user:pw@host:5432/db shared by workers and instances
    STATE_STORE=lakebase                          Databricks Lakebase: host, database and user
                                                  from PGHOST/PGDATABASE/PGUSER (what an App's
                                                  database resource sets), password minted by
                                                  databricks-sdk (LAKEBASE_INSTANCE_NAME or
                                                  LAKEBASE_ENDPOINT says for which database)
    STATE_STORE=off                               no state: stored features answer 400

Only `describe()` is ever shown (logs, /agent/info): it never carries a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

StoreKind = Literal["off", "sqlite", "postgresql", "lakebase"]

DEFAULT_STORE = "sqlite:///agent_state.db"


class StoreConfigError(ValueError):
    """STATE_STORE (or a setting it depends on) cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class StoreLocation:
    kind: StoreKind
    # sqlite: the file path (":memory:" is refused: every worker would see its own).
    path: str = ""
    # postgresql and lakebase: libpq connection parameters (the password only for postgresql).
    params: Mapping[str, str] = field(default_factory=dict, repr=False)
    # lakebase: which database the credential is minted for (one of the two).
    lakebase_instance: str = ""
    lakebase_endpoint: str = ""

    @property
    def enabled(self) -> bool:
        return self.kind != "off"

    def describe(self) -> str:
        """The location without credentials, for logs and /agent/info."""
        if self.kind == "off":
            return "off"
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        user = self.params.get("user")
        host = self.params.get("host", "localhost")
        port = self.params.get("port", "5432")
        where = f"{quote(user)}@" if user else ""
        described = f"{self.kind}://{where}{host}:{port}/{self.params.get('dbname', '')}"
        if self.lakebase_instance:
            described += f" (instance {self.lakebase_instance})"
        if self.lakebase_endpoint:
            described += f" (endpoint {self.lakebase_endpoint})"
        return described


def parse_location(
    value: str,
    *,
    lakebase_instance: str = "",
    lakebase_endpoint: str = "",
    libpq_env: Mapping[str, str] | None = None,
) -> StoreLocation:
    """`STATE_STORE` → a location. `libpq_env` holds PGHOST, PGPORT, PGDATABASE, PGUSER and
    PGSSLMODE, which fill what a lakebase URL leaves out."""
    value = value.strip() or DEFAULT_STORE
    if value.lower() in ("off", "none", "false", "0"):
        return StoreLocation("off")
    scheme, sep, _ = value.partition("://")
    scheme = scheme.lower()
    if value.lower() == "lakebase":
        scheme, sep = "lakebase", "://"
        value = "lakebase://"
    if not sep:
        raise StoreConfigError(
            f"STATE_STORE={value!r}: expected sqlite:///<path>, postgresql://..., lakebase or off"
        )
    if scheme == "sqlite":
        return _sqlite(value)
    if scheme in ("postgresql", "postgres"):
        params = _libpq_params(value)
        if "host" not in params:
            raise StoreConfigError("STATE_STORE: a postgresql:// URL needs a host")
        return StoreLocation("postgresql", params=params)
    if scheme == "lakebase":
        return _lakebase(value, lakebase_instance, lakebase_endpoint, libpq_env or {})
    raise StoreConfigError(
        f"STATE_STORE: unknown scheme {scheme!r}; expected sqlite, postgresql, lakebase or off"
    )


def _sqlite(value: str) -> StoreLocation:
    # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them.
    path = value[len("sqlite:///") :] if value.lower().startswith("sqlite:///") else ""
    path = unquote(path.split("?", 1)[0])
    if not path or path == ":memory:":
        raise StoreConfigError(
            "STATE_STORE: sqlite needs a file (sqlite:///state.db); an in-memory database "
            "would be private to each worker"
        )
    return StoreLocation("sqlite", path=path)


# What libpq reads from the environment, and Databricks Apps sets for a database resource.
LIBPQ_ENV = {
    "PGHOST": "host",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGSSLMODE": "sslmode",
}


def _libpq_params(value: str) -> dict[str, str]:
    parts = urlsplit(value)
    params: dict[str, str] = {}
    if parts.hostname:
        params["host"] = parts.hostname
    if parts.port:
        params["port"] = str(parts.port)
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    dbname = parts.path.lstrip("/")
    if dbname:
        params["dbname"] = unquote(dbname)
    params.update(parse_qsl(parts.query))
    return params


def _lakebase(
    value: str, instance: str, endpoint: str, libpq_env: Mapping[str, str]
) -> StoreLocation:
    params = {key: libpq_env[name] for name, key in LIBPQ_ENV.items() if libpq_env.get(name)}
    params.update(_libpq_params(value))
    if "password" in params:
        raise StoreConfigError(
            "STATE_STORE: a lakebase URL takes no password; databricks-sdk mints it"
        )
    params.setdefault("sslmode", "require")
    params.setdefault("dbname", "databricks_postgres")
    missing = [name for name, key in LIBPQ_ENV.items() if key in ("host", "user")]
    missing = [name for name in missing if LIBPQ_ENV[name] not in params]
    if missing:
        raise StoreConfigError(
            f"STATE_STORE=lakebase needs {' and '.join(missing)} (a Databricks App's database "
            "resource sets them) or lakebase://<user>@<host>/<database>"
        )
    if bool(instance) == bool(endpoint):
        raise StoreConfigError(
            "STATE_STORE=lakebase needs exactly one of LAKEBASE_INSTANCE_NAME (a database "
            "instance) or LAKEBASE_ENDPOINT (projects/<p>/branches/<b>/endpoints/<e>)"
        )
    return StoreLocation(
        "lakebase", params=params, lakebase_instance=instance, lakebase_endpoint=endpoint
    )
