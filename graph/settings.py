"""Process-wide settings, read once from the environment (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Server
    host: str = Field(default="127.0.0.1", alias="HOST")
    port: int = Field(default=8000, ge=1, le=65535, alias="PORT")
    data_dir: Path = Field(default=Path("./data"), alias="TASKAGENT_DATA_DIR")
    log_level: str = Field(default="INFO", alias="TASKAGENT_LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(default="json", alias="TASKAGENT_LOG_FORMAT")
    metrics_key: SecretStr | None = Field(default=None, alias="TASKAGENT_METRICS_KEY")

    # Model tiers (each optional; the offline engine is always last)
    ollama_base_url: str | None = Field(default=None, alias="OLLAMA_BASE_URL")
    ollama_model: str = Field(default="llama3.2", alias="OLLAMA_MODEL")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_model: str = Field(default="gpt-4o-mini", alias="OPENAI_MODEL")

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
    sse_ping_s: float = Field(default=15.0, gt=0, alias="TASKAGENT_SSE_PING_S")
    shutdown_grace_s: float = Field(default=10.0, ge=0, alias="TASKAGENT_SHUTDOWN_GRACE_S")

    # Redaction: the langsmith client reads its key itself; it is read here too so that every
    # answer, event, log line, audit row and trace is scrubbed of it.
    langsmith_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")
    )

    # Persistence
    sqlite_synchronous: str = Field(default="NORMAL", alias="TASKAGENT_SQLITE_SYNCHRONOUS")
    busy_timeout_ms: int = Field(default=5000, ge=0, alias="TASKAGENT_BUSY_TIMEOUT_MS")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.sqlite_synchronous.upper() not in {"NORMAL", "FULL", "EXTRA"}:
            raise ValueError("TASKAGENT_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
        self.sqlite_synchronous = self.sqlite_synchronous.upper()
        if self.openai_base_url is None and self.openai_api_key is None:
            return self
        if self.openai_api_key is None and self.openai_base_url is not None:
            # OpenAI-compatible local servers (LiteLLM, llama.cpp) accept any key.
            self.openai_api_key = SecretStr("not-needed")
        return self

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
    def tasks_db(self) -> Path:
        """SQLite file holding tasks, tool results and the message archive."""
        return self.data_dir / "tasks.sqlite"


@lru_cache
def get_settings() -> Settings:
    """Return the settings, read from the environment on first use."""
    return Settings()
