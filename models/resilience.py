"""Failure classification, retry timing and per-tier circuit breakers for model calls.

These are building blocks: the graph's `model_call` node asks a tier's `CircuitBreaker`
before calling, LangGraph's `RetryPolicy(retry_on=is_transient)` decides whether a failed
call is worth repeating, and `retry_after_seconds` / `backoff_delay` say how long to wait.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import httpx2  # the OpenAI SDK's transport: a fork of httpx with its own exception types
import ollama
import openai
from langchain_core.exceptions import ContextOverflowError, ModelError, ModelInvalidRequestError
from langgraph.errors import NodeTimeoutError

from graph import metrics

BreakerState = Literal["closed", "open", "half_open"]

# 408 Request Timeout and 429 Too Many Requests are the only 4xx answers worth repeating.
_RETRYABLE_4XX = frozenset({408, 429})
# Statuses whose `Retry-After` header means "come back later" (RFC 9110 §10.2.3).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_MAX_CHAIN = 16
# Answers that blame what one request carried (malformed, too large, context too long). Any
# client can provoke them, so they must not count against a tier everybody shares. 401/403
# (bad key), 404 (no such model) and the like are the tier's own configuration and do count.
_REQUEST_FAULT_STATUSES = frozenset({400, 413, 414, 422})


class CircuitOpenError(Exception):
    """Raised instead of calling a tier whose circuit breaker is open.

    Never transient: retrying the same tier cannot help, the caller should fall back.
    """

    def __init__(self, tier: str, retry_in_s: float) -> None:
        self.tier = tier
        self.retry_in_s = max(0.0, retry_in_s)
        super().__init__(
            f"circuit breaker for model tier {tier!r} is open; half-open in {self.retry_in_s:.1f}s"
        )


def _status_is_transient(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_4XX


def _chain(exc: BaseException, *, honour_suppress: bool) -> Iterator[BaseException]:
    """Yield `exc` then its causes/contexts, outermost first, without looping.

    With `honour_suppress`, an implicit `__context__` hidden by `raise ... from None`
    is not followed (that is how Python itself reports the error).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            current = current.__cause__
        elif honour_suppress and current.__suppress_context__:
            current = None
        else:
            current = current.__context__


_TRANSIENT_IO: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,  # ConnectError, ReadError, WriteError, CloseError
    httpx.RemoteProtocolError,  # peer closed the connection mid-response
    httpx2.TimeoutException,
    httpx2.NetworkError,
    httpx2.RemoteProtocolError,
)
_HTTP_STATUS_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPStatusError,
    httpx2.HTTPStatusError,
)


class RetryAfterTooLong(Exception):
    """A tier asked (Retry-After) for a longer pause than we wait; never transient."""

    def __init__(self, tier: str, wait_s: float) -> None:
        super().__init__(f"{tier} asked to retry after {wait_s:g} s; trying the next tier")


def _classify(exc: BaseException) -> bool | None:
    """Verdict for one exception: True/False when it decides, None to look further down."""
    if isinstance(exc, CircuitOpenError | RetryAfterTooLong):
        return False
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return _status_is_transient(exc.status_code)
    if isinstance(exc, ModelError):  # langchain's provider-neutral errors
        return bool(exc.is_retryable)
    if isinstance(exc, ollama.ResponseError):
        # status_code is -1 for an error reported inside a 200 stream (e.g. out of memory).
        return exc.status_code > 0 and _status_is_transient(exc.status_code)
    if isinstance(exc, _HTTP_STATUS_ERRORS):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        return isinstance(status, int) and _status_is_transient(status)
    if isinstance(exc, _TRANSIENT_IO):
        return True
    if isinstance(exc, (TimeoutError, ConnectionError, NodeTimeoutError)):
        # asyncio.TimeoutError is TimeoutError; NodeTimeoutError is LangGraph's per-attempt limit.
        return True
    if isinstance(exc, (ValueError, TypeError)):  # incl. pydantic ValidationError, JSON errors
        return False
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether repeating the same model call may succeed.

    True for refused/reset connections, timeouts, HTTP 5xx, 408 and 429 — raised by
    httpx, the OpenAI SDK (and its httpx2 transport), ollama or langchain's `ModelError`
    family. False for other 4xx answers, invalid input/output (`ValueError`), an open
    circuit breaker and anything unknown. Wrapped errors are unwrapped: the outermost
    exception in the `__cause__`/`__context__` chain that is recognised decides.
    """
    for link in _chain(exc, honour_suppress=True):
        verdict = _classify(link)
        if verdict is not None:
            return verdict
    return False


def _request_verdict(exc: BaseException) -> bool | None:
    """Whether one exception blames the request: True/False when it decides, None to look on."""
    if isinstance(exc, ContextOverflowError | ModelInvalidRequestError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _REQUEST_FAULT_STATUSES
    if isinstance(exc, ModelError | CircuitOpenError | RetryAfterTooLong):
        return False
    if isinstance(exc, ollama.ResponseError):
        return exc.status_code in _REQUEST_FAULT_STATUSES
    if isinstance(exc, _HTTP_STATUS_ERRORS):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return status in _REQUEST_FAULT_STATUSES
    if isinstance(exc, _TRANSIENT_IO):
        return False
    return None


def blames_request(exc: BaseException) -> bool:
    """Whether a model call failed because of what this request carried, not the tier.

    True for HTTP 400, 413, 414 and 422 answers and langchain's `ContextOverflowError` /
    `ModelInvalidRequestError`: a user can provoke these at will (an oversized history),
    so they must not move the circuit breaker that every user shares. False for
    connection errors, timeouts, 5xx, 429, 401/403 (a bad key fails everyone), 404 (no
    such model) and anything unknown. The outermost recognised error in the chain decides.
    """
    for link in _chain(exc, honour_suppress=True):
        verdict = _request_verdict(link)
        if verdict is not None:
            return verdict
    return False


def _headers_and_status(exc: BaseException) -> tuple[Mapping[str, str], int] | None:
    response: Any = getattr(exc, "response", None)
    if response is None:
        return None
    headers = getattr(response, "headers", None)
    status = getattr(response, "status_code", None)
    if headers is None or not isinstance(status, int):
        return None
    return headers, status


def _parse_retry_after(value: str, now: Callable[[], float]) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        now_dt = datetime.fromtimestamp(now(), tz=UTC)
        return max(0.0, (when - now_dt).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def retry_after_seconds(
    exc: BaseException, *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asked us to wait, from a 429/503 response's headers.

    Understands `Retry-After` as delta-seconds or an HTTP-date (relative to `now()`,
    wall-clock epoch seconds) and OpenAI's `retry-after-ms`. Looks at openai/httpx
    errors and — through the hidden `__context__` of `raise ... from None` — at the
    httpx error behind an `ollama.ResponseError`. None when there is no such header.
    """
    for link in _chain(exc, honour_suppress=False):
        found = _headers_and_status(link)
        if found is None:
            continue
        headers, status = found
        if status not in _RETRY_AFTER_STATUSES:
            return None
        millis = headers.get("retry-after-ms")
        if millis is not None:
            parsed = _parse_retry_after(millis, now)
            if parsed is not None:
                return parsed / 1000.0
        seconds = headers.get("retry-after")
        if seconds is not None:
            return _parse_retry_after(seconds, now)
        return None
    return None


def backoff_delay(
    attempt: int, initial: float, maximum: float, rng: random.Random | None = None
) -> float:
    """Delay before retry number `attempt` (1 = first retry): exponential, full jitter.

    delay = uniform(0, min(maximum, initial * 2 ** (attempt - 1)))

    Full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog) spreads
    clients that failed together across the whole window instead of synchronising them.
    """
    if maximum <= 0 or initial <= 0:
        return 0.0
    exponent = min(max(attempt, 1) - 1, 62)  # cap so 2**exponent stays a sane float
    ceiling = min(maximum, initial * (2.0**exponent))
    return (rng or random).uniform(0.0, ceiling)


class CircuitBreaker:
    """Consecutive-failure circuit breaker for one model tier.

    closed ──`threshold` consecutive failures──▶ open ──`cooldown_s` later──▶ half_open.
    In half_open exactly one trial call is let through (`allow()` is True once): its
    success closes the breaker, its failure re-opens it and restarts the cooldown. If the
    trial never reports back (cancelled), another trial is allowed after a further
    `cooldown_s`. Guarded by a lock, so it is safe from threads and one event loop alike.
    """

    def __init__(
        self,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        *,
        name: str = "model",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.name = name
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None  # set while open / half-open
        self._trial_started_at: float | None = None  # set while a half-open trial runs
        metrics.track_breaker(self)

    def _state_locked(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if now - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    @property
    def state(self) -> BreakerState:
        """Current state: "closed", "open" or "half_open" (cooldown over)."""
        with self._lock:
            return self._state_locked(self._clock())

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success."""
        return self._failures

    def seconds_until_half_open(self) -> float:
        """Seconds left in the cooldown (0.0 when closed or already half-open)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go through now; in half_open, True for one trial only."""
        with self._lock:
            now = self._clock()
            state = self._state_locked(now)
            if state == "closed":
                return True
            if state == "open":
                return False
            if self._trial_started_at is None or now - self._trial_started_at >= max(
                self.cooldown_s, 1e-9
            ):
                self._trial_started_at = now
                return True
            return False

    def check(self) -> None:
        """Raise `CircuitOpenError` unless `allow()` lets the call through."""
        if not self.allow():
            raise CircuitOpenError(self.name, self.seconds_until_half_open())

    def record_success(self) -> None:
        """A call succeeded: reset the failure count and close the breaker."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_started_at = None

    def release(self) -> None:
        """A call ended without saying anything about the tier: free the half-open trial.

        Used for a run cancelled by its client and for a request the provider refused for
        its own content; the failure count and the state stay as they are.
        """
        with self._lock:
            self._trial_started_at = None

    def record_failure(self) -> None:
        """A call failed: count it, opening (or re-opening) the breaker when due."""
        with self._lock:
            now = self._clock()
            self._failures += 1
            state = self._state_locked(now)
            if state == "half_open" or (state == "closed" and self._failures >= self.threshold):
                self._opened_at = now
                self._trial_started_at = None
                metrics.BREAKER_OPENS.labels(self.name).inc()
            # state == "open": a straggler that started before the breaker opened;
            # keep the running cooldown rather than extending it.

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(name={self.name!r}, state={self.state!r}, "
            f"failures={self._failures}, threshold={self.threshold}, "
            f"cooldown_s={self.cooldown_s})"
        )
