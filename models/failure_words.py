"""Why a model tier failed, in plain words, and the sentence that tells the user about it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import httpx
import httpx2
import ollama
import openai
from langchain_core.exceptions import ContextOverflowError
from langgraph.errors import NodeTimeoutError

from models.resilience import CircuitOpenError, RetryAfterTooLong

__all__ = ["fallback_notice", "plain_reason", "tier_words"]

_TIMEOUTS = (
    NodeTimeoutError,
    TimeoutError,
    asyncio.CancelledError,  # a node past its time limit is cancelled
    httpx.TimeoutException,
    httpx2.TimeoutException,
    openai.APITimeoutError,
)
_UNREACHABLE = (
    httpx.ConnectError,
    httpx2.ConnectError,
    ConnectionError,
    openai.APIConnectionError,
)
_CUT_OFF = (httpx.RemoteProtocolError, httpx2.RemoteProtocolError, httpx.ReadError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, openai.APIStatusError | ollama.ResponseError):
        return exc.status_code if exc.status_code > 0 else None
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _status_words(status: int) -> str:
    if status == 429:
        return "rate-limited (HTTP 429)"
    if status in (401, 403):
        return f"refused our credentials (HTTP {status})"
    if status == 404:
        return "does not know the model (HTTP 404)"
    if status >= 500:
        return f"had a server error (HTTP {status})"
    return f"refused the request (HTTP {status})"


def plain_reason(exc: BaseException) -> str:
    """Say in a few plain words why a model call failed: 'timed out', 'unreachable', …."""
    for link in _chain(exc):
        if isinstance(link, CircuitOpenError):
            return "circuit open after repeated failures"
        if isinstance(link, RetryAfterTooLong):
            return "rate-limited"
        if isinstance(link, ContextOverflowError):
            return "the conversation was too long for it"
        status = _status(link)
        if status is not None:
            return _status_words(status)
        if isinstance(link, _TIMEOUTS):
            return "timed out"
        if isinstance(link, _UNREACHABLE):
            return "unreachable"
        if isinstance(link, _CUT_OFF):
            return "dropped the connection mid-answer"
    return "failed"


def tier_words(label: str) -> str:
    """A tier as the user reads it: the offline engine by its role, others by their label."""
    return "the built-in offline engine" if label == "offline-engine" else label


def fallback_notice(reasons: Sequence[str], answered_by: str) -> str:
    """One sentence: which configured model(s) failed, why, and who answered instead."""
    if not reasons:
        return f"(An earlier model failed, so {tier_words(answered_by)} answered.)"
    if len(reasons) == 1:
        label, _, why = reasons[0].partition(" — ")
        failed = f"The configured model {label} didn't answer — {why or 'failed'} —"
    else:
        listed = ", ".join(r.replace(" — ", " (", 1) + ")" for r in reasons)
        failed = f"The configured models {listed} didn't answer,"
    return f"({failed} so {tier_words(answered_by)} answered.)"
