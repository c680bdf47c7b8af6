"""Process-wide settings, read once from the environment (and `.env`)."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

_LABEL = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
_HOST_PATTERN = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
# An origin, or one with `:*` for any port (loopback pages run on whatever port they got).
_ORIGIN = re.compile(rf"https?://(\[[0-9a-f:.]+\]|{_LABEL}(\.{_LABEL})*)(:\d{{1,5}}|:\*)?")
# Web pages that may call the API from a browser: any loopback page (agent-chat-ui, a
# useStream app on localhost) and LangGraph Studio, as `langgraph dev` allows them.
DEFAULT_ORIGINS = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://smith.langchain.com",
)

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ConfigError(Exception):
    """A setting is unusable; the message is one line naming the variable and the fix."""


class Settings(BaseSettings):
    """Every knob of the service; `.env.example` documents each one."""

    # An empty variable (`OPENAI_API_KEY=` exported or uncommented from .env.example) is unset.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    # Server
    host: str = Field(default="127.0.0.1", alias="HOST")
    port: int = Field(default=8000, ge=1, le=65535, alias="PORT")
    data_dir: Path = Field(default=Path("./data"), alias="TASKAGENT_DATA_DIR")
    # A langgraph.json whose graphs are served beside the task agent (`serve --config`).
    graphs_config: Path | None = Field(default=None, alias="TASKAGENT_GRAPHS_CONFIG")
    log_level: LogLevel = Field(default="INFO", alias="TASKAGENT_LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", alias="TASKAGENT_LOG_FORMAT")
    metrics_key: SecretStr | None = Field(default=None, alias="TASKAGENT_METRICS_KEY")

    # Proxies: uvicorn trusts X-Forwarded-For only from these addresses (comma-separated);
    # unset, no forwarded header is trusted and the socket peer is the client address.
    forwarded_allow_ips: str | None = Field(default=None, alias="TASKAGENT_FORWARDED_ALLOW_IPS")

    # Model tiers (each optional; the offline engine is always last)
    ollama_base_url: str | None = Field(default=None, alias="OLLAMA_BASE_URL")
    ollama_model: str = Field(default="llama3.2", alias="OLLAMA_MODEL")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_model: str = Field(default="gpt-4o-mini", alias="OPENAI_MODEL")

    # Context budget per tier (issue 11): the model's context window in tokens, the tokens
    # reserved for its answer (sent as max_tokens / num_predict) and the sampling temperature.
    # Every prompt is fitted so that tools + system prompt + window + reserved <= context.
    ollama_context_tokens: int = Field(
        default=8192, ge=1024, le=10_000_000, alias="TASKAGENT_OLLAMA_CONTEXT_TOKENS"
    )
    ollama_max_tokens: int = Field(default=512, ge=16, alias="TASKAGENT_OLLAMA_MAX_TOKENS")
    ollama_temperature: float = Field(default=0.2, ge=0, le=2, alias="TASKAGENT_OLLAMA_TEMPERATURE")
    openai_context_tokens: int = Field(
        default=128_000, ge=1024, le=10_000_000, alias="TASKAGENT_OPENAI_CONTEXT_TOKENS"
    )
    openai_max_tokens: int = Field(default=512, ge=16, alias="TASKAGENT_OPENAI_MAX_TOKENS")
    openai_temperature: float = Field(default=0.2, ge=0, le=2, alias="TASKAGENT_OPENAI_TEMPERATURE")

    offline_token_delay_ms: float = Field(
        default=0.0, ge=0, le=10_000, alias="TASKAGENT_OFFLINE_TOKEN_DELAY_MS"
    )
    offline_first_token_delay_ms: float = Field(
        default=0.0, ge=0, le=60_000, alias="TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS"
    )

    # Resilience
    model_timeout_s: float = Field(default=60.0, gt=0, alias="TASKAGENT_MODEL_TIMEOUT_S")
    model_max_attempts: int = Field(default=3, ge=1, le=10, alias="TASKAGENT_MODEL_MAX_ATTEMPTS")
    retry_initial_s: float = Field(default=0.5, ge=0, alias="TASKAGENT_RETRY_INITIAL_S")
    retry_max_s: float = Field(default=8.0, ge=0, alias="TASKAGENT_RETRY_MAX_S")
    # A 429/503 asking for a longer wait than this goes to the next tier instead of waiting.
    retry_after_max_s: float = Field(default=30.0, ge=0, alias="TASKAGENT_RETRY_AFTER_MAX_S")
    breaker_threshold: int = Field(default=3, ge=1, alias="TASKAGENT_BREAKER_THRESHOLD")
    breaker_cooldown_s: float = Field(default=30.0, ge=0, alias="TASKAGENT_BREAKER_COOLDOWN_S")
    tool_timeout_s: float = Field(default=10.0, gt=0, alias="TASKAGENT_TOOL_TIMEOUT_S")

    # Guards
    max_message_chars: int = Field(default=4000, ge=1, alias="TASKAGENT_MAX_MESSAGE_CHARS")
    max_model_calls: int = Field(default=8, ge=1, alias="TASKAGENT_MAX_MODEL_CALLS")
    context_messages: int = Field(default=40, ge=4, alias="TASKAGENT_CONTEXT_MESSAGES")

    # Model input and client messages: the whole prompt a model receives is bounded (oldest
    # turns go first), and one agent-protocol request carries at most this many messages.
    max_model_input_chars: int = Field(
        default=48_000, ge=1_000, alias="TASKAGENT_MAX_MODEL_INPUT_CHARS"
    )
    max_input_messages: int = Field(default=20, ge=1, alias="TASKAGENT_MAX_INPUT_MESSAGES")

    # Model output: the most characters of text plus tool-call arguments one model reply may
    # carry; a longer reply is stopped while it streams and discarded (nothing runs).
    max_model_output_chars: int = Field(
        default=64_000, ge=1_000, alias="TASKAGENT_MAX_MODEL_OUTPUT_CHARS"
    )

    # Tool calls
    max_tool_calls_per_message: int = Field(
        default=16, ge=1, le=1000, alias="TASKAGENT_MAX_TOOL_CALLS_PER_MESSAGE"
    )

    # Users, keys and limits
    api_keys: SecretStr | None = Field(default=None, alias="TASKAGENT_API_KEYS")
    keys_file: Path | None = Field(default=None, alias="TASKAGENT_KEYS_FILE")

    # Budgets (0 = no limit) and prices (USD per million tokens, by tier label)
    budget_tokens_per_thread: int = Field(
        default=500_000, ge=0, alias="TASKAGENT_BUDGET_TOKENS_PER_THREAD"
    )
    budget_tokens_per_user_day: int = Field(
        default=2_000_000, ge=0, alias="TASKAGENT_BUDGET_TOKENS_PER_USER_DAY"
    )
    budget_usd_per_user_day: float = Field(
        default=5.0, ge=0, alias="TASKAGENT_BUDGET_USD_PER_USER_DAY"
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {"openai:gpt-4o-mini": {"input": 0.15, "output": 0.60}},
        alias="TASKAGENT_PRICES",
    )
    rate_limit_rpm: int = Field(default=0, ge=0, alias="TASKAGENT_RATE_LIMIT_RPM")
    rate_limit_tpm: int = Field(default=0, ge=0, alias="TASKAGENT_RATE_LIMIT_TPM")
    idempotency_ttl_s: float = Field(default=86400.0, gt=0, alias="TASKAGENT_IDEMPOTENCY_TTL_S")
    turn_timeout_s: float = Field(default=300.0, gt=0, alias="TASKAGENT_TURN_TIMEOUT_S")

    # Runs and streams
    event_retention_s: float = Field(default=86400.0, gt=0, alias="TASKAGENT_EVENT_RETENTION_S")
    # The audit trail: rows older than this many days are deleted by a background pass
    # (one replica at a time); 0 keeps the trail forever. At most a century.
    audit_retention_days: float = Field(
        default=0.0, ge=0, le=36500, allow_inf_nan=False, alias="TASKAGENT_AUDIT_RETENTION_DAYS"
    )
    sse_ping_s: float = Field(default=15.0, gt=0, alias="TASKAGENT_SSE_PING_S")
    shutdown_grace_s: float = Field(default=10.0, ge=0, alias="TASKAGENT_SHUTDOWN_GRACE_S")
    # A running run's lease: renewed every third of it; another process takes the run over
    # once it has expired (its owner died). Pending runs of other processes are polled for.
    run_lease_s: float = Field(default=15.0, ge=1.0, le=3600.0, alias="TASKAGENT_RUN_LEASE_S")
    run_poll_s: float = Field(default=1.0, gt=0, le=60.0, alias="TASKAGENT_RUN_POLL_S")

    # Crons (server/runs/crons.py): how often each server looks for due crons, and the most
    # crons one user may have.
    cron_poll_s: float = Field(default=5.0, gt=0, le=60.0, alias="TASKAGENT_CRON_POLL_S")
    max_crons_per_user: int = Field(default=100, ge=1, alias="TASKAGENT_MAX_CRONS_PER_USER")
    # threads: how often the sweeper applies the TTL of threads whose time ran out (seconds).
    thread_ttl_sweep_s: float = Field(
        default=300.0, gt=0, le=86400.0, alias="TASKAGENT_THREAD_TTL_SWEEP_S"
    )

    # Browser guard (server/security/browser_guard.py): comma-separated in the environment
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="TASKAGENT_ALLOWED_HOSTS"
    )
    # Browser access (server/security/cors.py): the origins whose pages may call the API
    # (CORS) and change things (the guard's cross-site check); `none` allows no page.
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ORIGINS), alias="TASKAGENT_ALLOWED_ORIGINS"
    )
    api_docs: bool = Field(default=False, alias="TASKAGENT_API_DOCS")

    # Per-user limits (admission)
    max_threads_per_user: int = Field(default=10_000, ge=1, alias="TASKAGENT_MAX_THREADS_PER_USER")
    max_queued_runs_per_user: int = Field(
        default=20, ge=0, alias="TASKAGENT_MAX_QUEUED_RUNS_PER_USER"
    )

    # Request limits (issue 10): body and header size at the door, metadata per field, and
    # failed authentications per client address per minute (0 = no limit).
    max_body_bytes: int = Field(default=1_048_576, ge=1024, alias="TASKAGENT_MAX_BODY_BYTES")
    max_header_bytes: int = Field(default=16_384, ge=1024, alias="TASKAGENT_MAX_HEADER_BYTES")
    max_metadata_bytes: int = Field(default=16_384, ge=2, alias="TASKAGENT_MAX_METADATA_BYTES")
    max_metadata_depth: int = Field(default=10, ge=1, le=100, alias="TASKAGENT_MAX_METADATA_DEPTH")
    auth_failures_per_minute: int = Field(
        default=20, ge=0, alias="TASKAGENT_AUTH_FAILURES_PER_MINUTE"
    )

    # Redaction: the langsmith client reads its key itself; it is read here too so that every
    # answer, event, log line, audit row and trace is scrubbed of it.
    langsmith_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")
    )

    # Persistence: SQLite files in the data dir, or every store in PostgreSQL (docs/SCALING.md).
    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    pg_pool_size: int = Field(default=20, ge=2, le=1000, alias="TASKAGENT_PG_POOL_SIZE")
    # Off behind a transaction-pooling pgbouncer (LISTEN needs a session): replicas then poll.
    pg_listen: bool = Field(default=True, alias="TASKAGENT_PG_LISTEN")
    sqlite_synchronous: str = Field(default="NORMAL", alias="TASKAGENT_SQLITE_SYNCHRONOUS")
    busy_timeout_ms: int = Field(default=5000, ge=0, alias="TASKAGENT_BUSY_TIMEOUT_MS")

    # Wall-clock probes (server/observability/wallclock.py): event-loop lag, aiosqlite queue
    # waits and lock waits at /metrics, for finding what serialises; off in production.
    wallclock_probes: bool = Field(default=False, alias="TASKAGENT_WALLCLOCK_PROBES")

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, value: list[str]) -> list[str]:
        patterns = [item.strip().lower().rstrip(".") for item in value]
        for pattern in patterns:
            if not _HOST_PATTERN.fullmatch(pattern):
                raise ValueError(
                    f"TASKAGENT_ALLOWED_HOSTS entry {pattern!r} must be a host name such as"
                    " tasks.example.com or *.example.com, without scheme or port"
                )
        return patterns

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [item.strip().lower().rstrip("/") for item in value]
        if origins == ["none"]:
            return []
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"TASKAGENT_ALLOWED_ORIGINS entry {origin!r} must be an origin such as"
                    " https://smith.langchain.com or http://localhost:* (scheme, host, optional"
                    " port or :* for any port; no path), or none"
                )
        return origins

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str | None) -> str | None:
        for entry in filter(None, (part.strip() for part in (value or "").split(","))):
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{entry!r} is not an IP address or network (give the proxy's address)"
                    ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "DATABASE_URL must be a PostgreSQL URL such as"
                " postgresql://user:password@host:5432/dbname (unset it to use SQLite)"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.sqlite_synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
            raise ValueError("TASKAGENT_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
        self.sqlite_synchronous = self.sqlite_synchronous.upper()
        for tier in ("ollama", "openai"):
            reserved = getattr(self, f"{tier}_max_tokens")
            context = getattr(self, f"{tier}_context_tokens")
            if reserved > context // 2:
                raise ValueError(
                    f"TASKAGENT_{tier.upper()}_MAX_TOKENS ({reserved}) must be at most half of"
                    f" TASKAGENT_{tier.upper()}_CONTEXT_TOKENS ({context}), to leave room for the"
                    " prompt"
                )
        if self.openai_base_url is None and self.openai_api_key is None:
            return self
        if self.openai_api_key is None and self.openai_base_url is not None:
            # OpenAI-compatible local servers (LiteLLM, llama.cpp) accept any key.
            self.openai_api_key = SecretStr("not-needed")
        return self

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL every store lives in, or None for SQLite files in the data dir."""
        return self.database_url.get_secret_value() if self.database_url else None

    @property
    def checkpoint_db(self) -> Path:
        """SQLite file holding LangGraph checkpoints."""
        return self.data_dir / "checkpoints.sqlite"

    @property
    def keys_path(self) -> Path:
        """Where `taskagent keys add` stores key hashes."""
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def runs_db(self) -> Path:
        """SQLite file holding runs and their event logs."""
        return self.data_dir / "runs.sqlite"

    @property
    def store_db(self) -> Path:
        """SQLite file holding the LangGraph store (`/store/*`, `runtime.store`)."""
        return self.data_dir / "store.sqlite"

    @property
    def tasks_db(self) -> Path:
        """SQLite file holding tasks, tool results and the message archive."""
        return self.data_dir / "tasks.sqlite"


def _variable(field: str) -> str:
    info = Settings.model_fields.get(field)
    return info.alias if info is not None and info.alias else field


def config_problem(exc: ValidationError | SettingsError) -> str:
    """Return one line naming the first bad variable, what is wrong, and how to fix it."""
    if isinstance(exc, SettingsError):
        # pydantic-settings says: error parsing value for field "prices" from source ...
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
        variable = _variable(field)
        return f"{variable} is not valid JSON; fix it (see .env.example) or unset it."
    error = exc.errors()[0]
    variable = ".".join(str(p) for p in error["loc"]) or "configuration"
    reason = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return f"{reason}; fix it (see .env.example) or unset it."
    return f"{variable}: {reason}; fix it (see .env.example) or unset it."


def load_settings() -> Settings:
    """Read the settings from the environment; raise ConfigError with one line if unusable."""
    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        raise ConfigError(config_problem(exc)) from None


@lru_cache
def get_settings() -> Settings:
    """Return the settings, read from the environment on first use (ConfigError if unusable)."""
    return load_settings()
