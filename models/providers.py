"""The chain of model tiers: Ollama, then an OpenAI(-compatible) server, then offline.

`build_tiers` only builds what the settings configure; the built-in offline engine is
always the last tier, so the agent keeps working with no model server at all. Clients are
built so that *we* own the failure handling: explicit timeouts and no client-side retries
(LangGraph's `RetryPolicy(retry_on=is_transient)` retries, a `CircuitBreaker` per tier
stops hammering a dead server, and the graph's fallback node moves to the next tier).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from graph.settings import Settings
from models.resilience import CircuitBreaker

log = logging.getLogger(__name__)


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
    context_tokens: int | None = None
    """The model's context window in tokens; None: no budget (the offline engine)."""
    reserved_tokens: int = 0
    """Tokens of the context kept free for the model's answer (its max_tokens)."""


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
        # Ollama's default context (2048 or 4096 tokens) silently drops the start of a longer
        # prompt — the system prompt and tools first; the window is fitted to this size.
        num_ctx=settings.ollama_context_tokens,
        num_predict=settings.ollama_max_tokens,
        temperature=settings.ollama_temperature,
    )


def build_openai_model(settings: Settings) -> BaseChatModel:
    """ChatOpenAI for OpenAI or any compatible server; timeout set, client retries off."""
    import openai

    from models.bounded_openai import BoundedChatOpenAI

    return BoundedChatOpenAI(
        max_output_chars=settings.max_model_output_chars,
        model=settings.openai_model,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        # A Timeout object (unhashable) rather than a float makes langchain-openai build
        # this model its own HTTP client instead of sharing a process-wide cached one
        # keyed by (base_url, timeout), which breaks once used from a second event loop.
        timeout=openai.Timeout(settings.model_timeout_s),
        max_retries=0,  # our RetryPolicy retries; the SDK must not retry underneath it
        stream_usage=True,
        # Sent as max_completion_tokens (llama-server and LiteLLM read it too): a small model
        # must not generate until its context is full.
        max_tokens=settings.openai_max_tokens,
        temperature=settings.openai_temperature,
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
                context_tokens=settings.ollama_context_tokens,
                reserved_tokens=settings.ollama_max_tokens,
            )
        )
    if settings.openai_api_key is not None or settings.openai_base_url:
        tiers.append(
            Tier(
                name="openai",
                label=f"openai:{settings.openai_model}",
                model=build_openai_model(settings),
                breaker=_breaker("openai", settings),
                context_tokens=settings.openai_context_tokens,
                reserved_tokens=settings.openai_max_tokens,
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


# --- reachability --------------------------------------------------------------------------


def server_url(tier: Tier) -> str | None:
    """Return the address of the model server behind `tier`, or None (offline, hosted API)."""
    if tier.name == "ollama":
        return str(getattr(tier.model, "base_url", None) or "") or None
    if tier.name == "openai":
        return str(getattr(tier.model, "openai_api_base", None) or "") or None
    return None


def _reason(exc: Exception) -> str:
    # httpx says "All connection attempts failed"; the OS error beneath says why.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


async def unreachable_reason(url: str, timeout_s: float) -> str | None:
    """Return why the server at `url` does not answer HTTP, or None when it answers at all."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            await client.get(url)
    except httpx.TimeoutException:
        return f"no answer within {timeout_s:g} s"
    except (httpx.HTTPError, OSError) as exc:
        return _reason(exc)
    return None


class Reachability:
    """Whether each configured model server answers, probed at start-up and now and then.

    A tier that stops (or starts) answering is logged once, when that changes, with the
    reason; turns meanwhile fall back to the next tier without a traceback per call.
    """

    def __init__(self, tiers: list[Tier], timeout_s: float = 2.0, every_s: float = 30.0) -> None:
        self.tiers = tiers
        self.timeout_s = timeout_s
        self.every_s = every_s
        self.problems: dict[str, str | None] = {}

    async def check(self) -> None:
        """Probe every tier that has a server address; log each change of its state."""
        probed = [(tier, url) for tier in self.tiers if (url := server_url(tier))]
        reasons = await asyncio.gather(
            *(unreachable_reason(url, self.timeout_s) for _, url in probed)
        )
        for (tier, url), reason in zip(probed, reasons, strict=True):
            if reason is not None and self.problems.get(tier.name) != reason:
                log.warning(
                    "model tier %s is unreachable at %s: %s; turns use the next tier",
                    tier.label,
                    url,
                    reason,
                    extra={"tier": tier.label, "reason": reason},
                )
            elif reason is None and self.problems.get(tier.name):
                log.info("model tier %s answers again at %s", tier.label, url)
            self.problems[tier.name] = reason

    async def watch(self) -> None:
        """Probe again every `every_s` seconds, for as long as the server runs."""
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.check()
            except Exception:
                log.exception("model reachability probe failed")

    def status(self, tier: Tier) -> tuple[str, str | None]:
        """Return ("ok" | "unreachable" | "unchecked", reason) from the last probe."""
        if tier.name == "offline":
            return "ok", None  # in-process: nothing to reach
        if tier.name not in self.problems:
            return "unchecked", None
        reason = self.problems[tier.name]
        return ("ok", None) if reason is None else ("unreachable", reason)
