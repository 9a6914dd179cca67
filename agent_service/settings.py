"""Configuration: one frozen dataclass built from an environment mapping.

This is the only module that reads `os.environ`. Everything else receives a `Settings`.
`Settings.from_env({})` is a complete, valid configuration (offline model, defaults), which is
what the tests start from. A malformed value fails loudly with the variable's name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar, get_args

from agent_service.protocols.registry import TASK_NAMES, TaskName
from agent_service.state.config import LIBPQ_ENV, StoreConfigError, StoreLocation, parse_location

if TYPE_CHECKING:
    from databricks.sdk.core import Config

ModelBackend = Literal["offline", "openai", "databricks"]
BACKENDS: tuple[ModelBackend, ...] = get_args(ModelBackend)

MIB = 1024 * 1024
# The default agent is one example of what AGENT names: a factory of a LangGraph graph.
DEFAULT_AGENT = "agent_service.agents.default_graph:build_graph"
# `package.module` or `package.module:attribute` (attribute may be dotted), or a Python
# file (models from code): `path/to/agent.py[:attribute]`.
_AGENT_SPEC = re.compile(r"^([A-Za-z_][\w.]*|[\w./-]+\.py)(:[A-Za-z_][\w.]*)?$")


# Stopping a worker, after the drain: streams stopped at its end get this long to write their
# terminal events (http/admission.py).
STOP_FAREWELL_S = 5.0
# Databricks Apps stops an app with SIGTERM and kills it this long after.
DATABRICKS_APPS_STOP_S = 15.0
# What a stop needs besides the drain and the farewell: the worker flushing its traces and
# exiting (1 s), gunicorn's master reaping it and exiting (1 s).
STOP_EXIT_S = 2.0
# The drain's default on Databricks Apps: with the farewell and the exit, 7 + 5 + 2 = 14 s,
# inside the platform's 15. The longest drain that fits is 8 s.
DATABRICKS_APPS_DRAIN_S = 7.0
DATABRICKS_APPS_MAX_DRAIN_S = DATABRICKS_APPS_STOP_S - STOP_FAREWELL_S - STOP_EXIT_S


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclass(frozen=True, slots=True)
class DatabricksAuth:
    """What we pass to databricks-sdk's `Config`; unset values are resolved by the SDK itself
    (its own environment variables, `~/.databrickscfg` profiles, the Apps service principal)."""

    host: str | None = None
    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    profile: str | None = None

    # Bounds on databricks-sdk's own network I/O (credential discovery, token minting), so a
    # workspace that does not answer fails start-up instead of hanging it.
    SDK_HTTP_TIMEOUT_S = 10
    SDK_RETRY_TIMEOUT_S = 30

    def sdk_config(self) -> Config:
        """databricks-sdk's `Config` for these credentials. It resolves them and may do
        network I/O (OAuth discovery): call it in a thread, never on the event loop."""
        # Imported here: databricks-sdk takes over a second to import, which only the
        # features that talk to a workspace should pay.
        from databricks.sdk.core import Config

        return Config(
            host=self.host,
            token=self.token,
            client_id=self.client_id,
            client_secret=self.client_secret,
            profile=self.profile,
            http_timeout_seconds=self.SDK_HTTP_TIMEOUT_S,
            retry_timeout_seconds=self.SDK_RETRY_TIMEOUT_S,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    # --- the agent ---
    # What to serve, `package.module:attribute`: a compiled LangGraph graph, a factory of
    # one, @invoke/@stream functions, an MLflow agent class (agents/loader.py).
    agent: str = DEFAULT_AGENT
    agent_name: str = "agent-service"
    task: TaskName = "agent/v1/chat"
    # AGENT_TASK was set: /invocations speaks it. Unset, /invocations speaks the protocol the
    # agent is written in (an AgentServer("ResponsesAgent"), an MLflow ChatAgent), else the
    # default above.
    task_explicit: bool = False
    # The version reported by /agent/info; empty means "the package version".
    agent_version: str = ""
    # The agent's own tools, by name (see agent_service/tools.py).
    agent_tools: tuple[str, ...] = ()
    # Steps one run of a LangGraph graph may take (its `recursion_limit`: supersteps, two
    # per tool round trip of a ReAct agent); past it the run ends as cut short; 0 = no limit
    # of ours (LangGraph's own, about 10,000). 25 is the limit LangGraph had by default for
    # years, which graphs were written against: 12 tool round trips, more than a real answer
    # takes, and a model that never stops calling tools costs 12 paid calls, not hundreds.
    max_agent_steps: int = 25

    # --- the chat model ---
    backend: ModelBackend = "offline"
    databricks_endpoint: str = ""
    databricks: DatabricksAuth = field(default_factory=DatabricksAuth)
    openai_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    openai_model: str = ""
    model_timeout_s: float = 120.0
    model_max_retries: int = 2
    # Delay between tokens of the offline model; makes streaming visible in a terminal.
    offline_token_delay_s: float = 0.0
    # A JSON file of scripted offline-model turns (text and tool calls), for demos and tests.
    offline_script: str = ""

    # --- tracing and versioning (MLflow) ---
    tracing: bool = True
    # Where traces go: databricks, http(s)://<tracking server>, sqlite:///<path>.
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment_id: str = ""
    # Used when no experiment id is given; created when missing. Default: the agent's name.
    experiment_name: str = ""
    trace_sampling_ratio: float = 1.0
    # How long a worker waits for the tracking store at start-up before serving untraced.
    tracing_start_timeout_s: float = 30.0
    # Where finished traces wait for the export process (a folder per destination under
    # it); empty = the system's temporary folder.
    trace_spool_dir: str = ""
    # Unexported traces one worker may hold in the spool; past it traces are dropped, counted.
    trace_spool_max_bytes: int = 256 * MIB
    # The CPUs the export process runs on (e.g. "1"); empty = wherever the kernel puts it.
    trace_exporter_cpus: str = ""
    # The name versions are logged under: `<app name>-git-<sha8>`. Default: the agent's name.
    app_name: str = ""
    # Registration of the version in Unity Catalog (`make register`).
    uc_model_name: str = ""
    registry_uri: str = "databricks-uc"

    # --- HTTP ---
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_body_bytes: int = 16 * MIB
    # A `: ping` comment on idle streams this often keeps proxies from closing them; 0 = off.
    sse_heartbeat_s: float = 15.0
    # A client that stops reading a stream is dropped when one write waits this long.
    sse_write_timeout_s: float = 30.0
    # Past this a run is cancelled and the client gets 504 (or an in-band error); 0 = none.
    request_deadline_s: float = 300.0
    # Agent requests one worker runs at once; more are refused with 503 at once; 0 = no limit.
    max_concurrent_requests: int = 10_000
    # After SIGTERM: how long in-flight requests may take to finish before open streams are
    # ended with a `server_shutting_down` error.
    drain_s: float = 20.0
    # Running on Databricks Apps (the platform set DATABRICKS_APP_NAME and
    # DATABRICKS_APP_PORT): the whole stop must fit in its DATABRICKS_APPS_STOP_S.
    on_databricks_apps: bool = False
    max_header_bytes: int = 8190
    # The whole request body must arrive within this, or the client gets 408. The body is
    # read before the request takes one of MAX_CONCURRENT_REQUESTS, so a slow uploader holds
    # a connection, never a run's place. 60 s carries the 16 MiB limit at about 2.3 Mbit/s,
    # a slow mobile uplink.
    body_read_timeout_s: float = 60.0
    # A connection that sends no complete request head for this long is closed: idle between
    # requests (keep-alive) and slow to send its headers alike. aiohttp times both with the
    # one timer (from the connection's start, or the end of its last answer), so they are
    # one setting. 75 s outlasts the idle timeouts of common load balancers (60 s), so the
    # balancer, not us, closes a pooled connection first.
    idle_timeout_s: float = 75.0
    # Bearer keys accepted on every route but /health and /ready; none = no authentication
    # (Databricks Apps authenticates callers itself).
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # Origins allowed to call from a browser; none = CORS off.
    cors_allow_origins: tuple[str, ...] = ()
    # gunicorn's workers share their metrics through files here (prometheus_client's
    # multi-process mode); set by `agent-server`, empty in a single process.
    metrics_dir: str = ""
    log_level: str = "INFO"

    # --- conversation state (agent_service/state) ---
    # Where stored responses, conversations and the agent's memory live (STATE_STORE).
    state_store: StoreLocation = field(default_factory=lambda: parse_location(""))
    # Stored state unused this long is deleted; 0 keeps it until a client deletes it.
    # OpenAI keeps stored responses for 30 days.
    state_retention_days: float = 30.0
    # PostgreSQL connections per worker.
    state_pool_size: int = 10
    # How long start-up waits for the store before the worker gives up.
    state_connect_timeout_s: float = 30.0
    # Stored stream events are deleted this long after they were written (a stream can no
    # longer be resumed; the response itself stays for STATE_RETENTION_DAYS); 0 = with it.
    state_event_retention_s: float = 0.0

    # --- background runs (`background: true`, agent_service/http/background.py) ---
    # A background run is stopped (failed, deadline_exceeded) after this long: longer than
    # any request deadline, since the point of a background run is to outlive requests.
    background_deadline_s: float = 3600.0
    # Background runs one worker holds at once; more are refused with 429.
    background_runs_per_worker: int = 100
    # Each worker records that its runs are alive this often; a run whose worker has not
    # done so for `background_stale_s` is ended `failed` (its worker died).
    background_heartbeat_s: float = 2.0
    background_stale_s: float = 15.0
    # A stream of a run on another worker or instance reads the store this often.
    background_poll_s: float = 0.25
    # What becomes of a run whose worker died or stopped: "off" ends it `failed`
    # (worker_lost, shutdown); "checkpoint" has another worker take it over and go on from
    # the last step its LangGraph graph saved (a graph agent in a thread; others still fail).
    background_resume: Literal["off", "checkpoint"] = "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        defaults = cls()
        endpoint = reader.text("DATABRICKS_SERVING_ENDPOINT")
        openai_base_url = reader.text("OPENAI_BASE_URL")
        openai_api_key = reader.text("OPENAI_API_KEY")
        openai_model = reader.text("OPENAI_MODEL")
        chosen = reader.choice("MODEL_BACKEND", ("auto", *BACKENDS), "auto")
        on_apps = bool(
            reader.optional("DATABRICKS_APP_NAME") and reader.optional("DATABRICKS_APP_PORT")
        )
        backend = (
            _detect_backend(endpoint, openai_base_url, openai_api_key)
            if chosen == "auto"
            else next(option for option in BACKENDS if option == chosen)
        )
        settings = cls(
            agent=reader.agent_spec("AGENT", defaults.agent),
            agent_name=reader.text("AGENT_NAME", defaults.agent_name),
            task=reader.choice("AGENT_TASK", TASK_NAMES, defaults.task),
            task_explicit=reader.optional("AGENT_TASK") is not None,
            agent_version=reader.text("AGENT_VERSION"),
            agent_tools=reader.names("AGENT_TOOLS"),
            max_agent_steps=reader.integer("MAX_AGENT_STEPS", defaults.max_agent_steps, low=0),
            backend=backend,
            databricks_endpoint=endpoint,
            databricks=DatabricksAuth(
                host=reader.optional("DATABRICKS_HOST"),
                token=reader.optional("DATABRICKS_TOKEN"),
                client_id=reader.optional("DATABRICKS_CLIENT_ID"),
                client_secret=reader.optional("DATABRICKS_CLIENT_SECRET"),
                profile=reader.optional("DATABRICKS_CONFIG_PROFILE"),
            ),
            openai_base_url=openai_base_url,
            openai_api_key=openai_api_key,
            openai_model=openai_model,
            model_timeout_s=reader.number(
                "MODEL_TIMEOUT_SECONDS", defaults.model_timeout_s, low=0.1
            ),
            model_max_retries=reader.integer(
                "MODEL_MAX_RETRIES", defaults.model_max_retries, low=0
            ),
            offline_token_delay_s=reader.number("OFFLINE_TOKEN_DELAY_MS", 0.0, low=0.0) / 1000,
            offline_script=reader.text("OFFLINE_SCRIPT"),
            tracing=reader.boolean("AGENT_TRACING", defaults.tracing),
            tracking_uri=reader.text("MLFLOW_TRACKING_URI", defaults.tracking_uri),
            experiment_id=reader.text("MLFLOW_EXPERIMENT_ID"),
            experiment_name=reader.text("MLFLOW_EXPERIMENT_NAME"),
            trace_sampling_ratio=reader.number(
                "TRACE_SAMPLING_RATIO", defaults.trace_sampling_ratio, low=0.0, high=1.0
            ),
            tracing_start_timeout_s=reader.number(
                "TRACING_START_TIMEOUT_SECONDS", defaults.tracing_start_timeout_s, low=0.1
            ),
            trace_spool_dir=reader.text("TRACE_SPOOL_DIR"),
            trace_spool_max_bytes=reader.integer(
                "TRACE_SPOOL_MAX_MB", defaults.trace_spool_max_bytes // MIB, low=1
            )
            * MIB,
            trace_exporter_cpus=reader.cpus("TRACE_EXPORTER_CPUS"),
            app_name=reader.text("DATABRICKS_APP_NAME"),
            uc_model_name=reader.text("UC_MODEL_NAME"),
            registry_uri=reader.text("MLFLOW_REGISTRY_URI", defaults.registry_uri),
            host=reader.text("AGENT_HOST", defaults.host),
            port=reader.integer("DATABRICKS_APP_PORT", defaults.port, low=0, high=65535),
            workers=reader.integer("WEB_CONCURRENCY", defaults.workers, low=1),
            max_body_bytes=reader.integer("MAX_BODY_BYTES", defaults.max_body_bytes, low=1024),
            sse_heartbeat_s=reader.number(
                "SSE_HEARTBEAT_SECONDS", defaults.sse_heartbeat_s, low=0.0
            ),
            sse_write_timeout_s=reader.number(
                "SSE_WRITE_TIMEOUT_SECONDS", defaults.sse_write_timeout_s, low=0.1
            ),
            request_deadline_s=reader.number(
                "REQUEST_DEADLINE_SECONDS", defaults.request_deadline_s, low=0.0
            ),
            max_concurrent_requests=reader.integer(
                "MAX_CONCURRENT_REQUESTS", defaults.max_concurrent_requests, low=0
            ),
            drain_s=reader.number(
                "DRAIN_SECONDS",
                DATABRICKS_APPS_DRAIN_S if on_apps else defaults.drain_s,
                low=0.0,
                high=DATABRICKS_APPS_MAX_DRAIN_S if on_apps else None,
                why=" on Databricks Apps, which kills an app "
                f"{DATABRICKS_APPS_STOP_S:g} s after SIGTERM"
                if on_apps
                else "",
            ),
            on_databricks_apps=on_apps,
            max_header_bytes=reader.integer(
                "MAX_HEADER_BYTES", defaults.max_header_bytes, low=1024
            ),
            body_read_timeout_s=reader.number(
                "BODY_READ_TIMEOUT_SECONDS", defaults.body_read_timeout_s, low=0.1
            ),
            idle_timeout_s=reader.number("IDLE_TIMEOUT_SECONDS", defaults.idle_timeout_s, low=0.1),
            api_keys=reader.secrets("AGENT_API_KEYS"),
            cors_allow_origins=reader.names("CORS_ALLOW_ORIGINS"),
            metrics_dir=reader.text("PROMETHEUS_MULTIPROC_DIR"),
            log_level=reader.choice(
                "LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), defaults.log_level, upper=True
            ),
            state_store=reader.store_location(),
            state_retention_days=reader.number(
                "STATE_RETENTION_DAYS", defaults.state_retention_days, low=0.0
            ),
            state_pool_size=reader.integer("STATE_POOL_SIZE", defaults.state_pool_size, low=1),
            state_connect_timeout_s=reader.number(
                "STATE_CONNECT_TIMEOUT_SECONDS", defaults.state_connect_timeout_s, low=0.1
            ),
            state_event_retention_s=reader.number(
                "STATE_EVENT_RETENTION_SECONDS", defaults.state_event_retention_s, low=0.0
            ),
            background_deadline_s=reader.number(
                "BACKGROUND_DEADLINE_SECONDS", defaults.background_deadline_s, low=0.0
            ),
            background_runs_per_worker=reader.integer(
                "BACKGROUND_RUNS_PER_WORKER", defaults.background_runs_per_worker, low=1
            ),
            background_heartbeat_s=reader.number(
                "BACKGROUND_HEARTBEAT_SECONDS", defaults.background_heartbeat_s, low=0.05
            ),
            background_stale_s=reader.number(
                "BACKGROUND_STALE_SECONDS", defaults.background_stale_s, low=0.1
            ),
            background_poll_s=reader.number(
                "BACKGROUND_POLL_SECONDS", defaults.background_poll_s, low=0.01
            ),
            background_resume=reader.choice(
                "BACKGROUND_RESUME", ("off", "checkpoint"), defaults.background_resume
            ),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Fail at start-up, not at the first request, when a backend lacks what it needs."""
        if self.backend == "databricks" and not self.databricks_endpoint:
            raise SettingsError(
                "MODEL_BACKEND=databricks needs DATABRICKS_SERVING_ENDPOINT (the endpoint name)"
            )
        if self.backend == "openai" and not (self.openai_base_url or self.openai_api_key):
            raise SettingsError("MODEL_BACKEND=openai needs OPENAI_BASE_URL and/or OPENAI_API_KEY")
        if self.backend == "openai" and not self.openai_model:
            raise SettingsError("MODEL_BACKEND=openai needs OPENAI_MODEL (the model name)")

    @property
    def stop_budget_s(self) -> float | None:
        """How long the platform lets a stopping server take before it kills it, if it says."""
        return DATABRICKS_APPS_STOP_S if self.on_databricks_apps else None

    @property
    def version_name(self) -> str:
        """What versions of this agent are called: `<app name>-...`."""
        return self.app_name or self.agent_name


def _detect_backend(endpoint: str, openai_base_url: str, openai_api_key: str) -> ModelBackend:
    if endpoint:
        return "databricks"
    if openai_base_url or openai_api_key:
        return "openai"
    return "offline"


_T = TypeVar("_T", bound=str)


@dataclass(frozen=True, slots=True)
class _Reader:
    env: Mapping[str, str]

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str = "") -> str:
        return self.optional(name) or default

    def choice(self, name: str, allowed: tuple[_T, ...], default: _T, *, upper: bool = False) -> _T:
        raw = self.optional(name)
        if raw is None:
            return default
        raw = raw.upper() if upper else raw
        for option in allowed:
            if raw == option:
                return option
        raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(allowed)}")

    def agent_spec(self, name: str, default: str) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        if not _AGENT_SPEC.match(raw):
            raise SettingsError(
                f"{name}={raw!r}: expected package.module:attribute (for example "
                "my_agent.graph:graph) or a file, path/to/agent.py"
            )
        return raw

    def names(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, without blanks or repeats, in the given order."""
        raw = self.optional(name) or ""
        return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))

    def secrets(self, name: str) -> tuple[str, ...]:
        """Like `names`, but a value that is set and holds no name at all (" ", " , ") is an
        error: a secret that rendered blank must not silently turn authentication off."""
        keys = self.names(name)
        if not keys and self.env.get(name, ""):
            raise SettingsError(
                f"{name} is set but holds no key (only blanks and commas); unset it to serve "
                "without authentication, or give the keys, comma-separated"
            )
        return keys

    def integer(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise SettingsError(f"{name}={value}: expected a value {bounds}")
        return value

    def number(
        self, name: str, default: float, *, low: float, high: float | None = None, why: str = ""
    ) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected a number") from None
        if not value >= low or (high is not None and value > high):  # also rejects NaN
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise SettingsError(f"{name}={value}: expected a value {bounds}{why}")
        return value

    def cpus(self, name: str) -> str:
        """A list of CPU numbers, comma-separated."""
        cpus = self.names(name)
        if not all(cpu.isdigit() for cpu in cpus):
            raise SettingsError(f"{name}={','.join(cpus)!r}: expected CPU numbers, e.g. 1 or 2,3")
        return ",".join(cpus)

    def store_location(self) -> StoreLocation:
        try:
            return parse_location(
                self.text("STATE_STORE"),
                lakebase_instance=self.text("LAKEBASE_INSTANCE_NAME"),
                lakebase_endpoint=self.text("LAKEBASE_ENDPOINT"),
                libpq_env={name: self.env[name] for name in LIBPQ_ENV if self.env.get(name)},
            )
        except StoreConfigError as problem:
            raise SettingsError(str(problem)) from None

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={raw!r}: expected true or false")
