"""The chain of model tiers: Ollama, then an OpenAI(-compatible) server, then offline.

`build_tiers` only builds what the settings configure; the built-in offline engine is
always the last tier, so the agent keeps working with no model server at all. Clients are
built so that *we* own the failure handling: explicit timeouts and no client-side retries
(LangGraph's `RetryPolicy(retry_on=is_transient)` retries, a `CircuitBreaker` per tier
stops hammering a dead server, and the graph's fallback node moves to the next tier).
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from graph.settings import Settings
from models.resilience import CircuitBreaker


@dataclass
class Tier:
    """One rung of the model fallback chain."""

    name: str
    """"ollama", "openai" or "offline"."""
    label: str
    """Human-readable provider:model, e.g. "ollama:llama3.2", "offline-engine"."""
    model: BaseChatModel
    """The chat model; call `model.bind_tools(...).ainvoke(messages)`."""
    breaker: CircuitBreaker
    """This tier's own circuit breaker."""


def _breaker(name: str, settings: Settings) -> CircuitBreaker:
    return CircuitBreaker(
        threshold=settings.breaker_threshold,
        cooldown_s=settings.breaker_cooldown_s,
        name=name,
    )


def build_ollama_model(settings: Settings) -> BaseChatModel:
    """ChatOllama for `settings.ollama_base_url` with the model timeout on its httpx client."""
    from langchain_ollama import ChatOllama

    return ChatOllama(
        base_url=settings.ollama_base_url,
        model=settings.ollama_model,
        client_kwargs={"timeout": settings.model_timeout_s},
    )


def build_openai_model(settings: Settings) -> BaseChatModel:
    """ChatOpenAI for OpenAI or any compatible server; timeout set, client retries off."""
    import openai
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.openai_model,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        # A Timeout object (unhashable) rather than a float makes langchain-openai build
        # this model its own HTTP client instead of sharing a process-wide cached one
        # keyed by (base_url, timeout), which breaks once used from a second event loop.
        timeout=openai.Timeout(settings.model_timeout_s),
        max_retries=0,  # our RetryPolicy retries; the SDK must not retry underneath it
        stream_usage=True,
    )


def build_offline_model(settings: Settings | None = None) -> BaseChatModel:
    """The built-in offline engine (imported lazily: it is the last resort)."""
    from models.offline import OfflineChatModel

    if settings is None:
        return OfflineChatModel()
    return OfflineChatModel(
        token_delay_s=settings.offline_token_delay_ms / 1000,
        first_token_delay_s=settings.offline_first_token_delay_ms / 1000,
    )


def build_tiers(settings: Settings) -> list[Tier]:
    """The configured tiers in fallback order; the offline engine is always last.

    Ollama is included when `OLLAMA_BASE_URL` is set; OpenAI when `OPENAI_API_KEY` or
    `OPENAI_BASE_URL` is set. Every tier gets its own `CircuitBreaker`.
    """
    tiers: list[Tier] = []
    if settings.ollama_base_url:
        tiers.append(
            Tier(
                name="ollama",
                label=f"ollama:{settings.ollama_model}",
                model=build_ollama_model(settings),
                breaker=_breaker("ollama", settings),
            )
        )
    if settings.openai_api_key is not None or settings.openai_base_url:
        tiers.append(
            Tier(
                name="openai",
                label=f"openai:{settings.openai_model}",
                model=build_openai_model(settings),
                breaker=_breaker("openai", settings),
            )
        )
    tiers.append(
        Tier(
            name="offline",
            label="offline-engine",
            model=build_offline_model(settings),
            breaker=_breaker("offline", settings),
        )
    )
    return tiers
