"""Per-user rate limits: requests per minute and model tokens per minute (token buckets)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from graph import metrics
from tools.audit import AuditRecord


@dataclass
class TokenBucket:
    """A bucket of `capacity` that refills at `capacity` per minute and may go into debt."""

    capacity: float
    clock: Callable[[], float] = time.monotonic
    level: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.level = self.capacity
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 if it is now)."""
        self._refill()
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing * 60 / self.capacity

    def take(self, amount: float) -> None:
        """Remove `amount` (the level may go below zero: a debt paid back by refilling)."""
        self._refill()
        self.level -= amount


class RateLimiter:
    """Requests and model tokens per minute per user; a limit of 0 is no limit."""

    def __init__(self, rpm: int, tpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm, self.tpm, self._clock = rpm, tpm, clock
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return bool(self.rpm or self.tpm)

    def admit(self, user: str) -> int | None:
        """Count a request; return None if admitted, else whole seconds to wait (Retry-After)."""
        waits: dict[str, float] = {}
        if self.tpm:
            # Token debt from earlier runs must be paid back before new work starts.
            waits["tokens"] = self._bucket(self._tokens, user, self.tpm).wait_for(1)
        if self.rpm:
            waits["requests"] = self._bucket(self._requests, user, self.rpm).wait_for(1)
        wait = max(waits.values(), default=0.0)
        if wait > 0:
            metrics.RATE_LIMIT_REJECTIONS.labels(max(waits, key=waits.__getitem__)).inc()
            return max(1, math.ceil(wait))
        if self.rpm:
            self._requests[user].take(1)
        return None

    def spend_tokens(self, user: str, tokens: int) -> None:
        """Charge the model tokens a run used to the user's per-minute budget."""
        if self.tpm and tokens:
            self._bucket(self._tokens, user, self.tpm).take(tokens)

    def _bucket(self, buckets: dict[str, TokenBucket], user: str, capacity: int) -> TokenBucket:
        if user not in buckets:
            buckets[user] = TokenBucket(capacity, self._clock)
        return buckets[user]


class AuthFailureLimiter:
    """Failed authentications per client address per minute; 0 is no limit.

    Past the limit every request from the address is refused, with or without a right key,
    until the bucket refills: guessing keys gets one try every 60/limit seconds.
    """

    MAX_TRACKED = 10_000  # addresses; the full (forgiven) buckets are dropped beyond this

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self._clock = per_minute, clock
        self._failures: dict[str, TokenBucket] = {}

    def retry_after(self, client: str) -> int | None:
        """Return None if `client` may try to authenticate, else whole seconds to wait."""
        bucket = self._failures.get(client)
        if not self.per_minute or bucket is None:
            return None
        wait = bucket.wait_for(1)
        if wait <= 0:
            return None
        metrics.RATE_LIMIT_REJECTIONS.labels("auth_failures").inc()
        return max(1, math.ceil(wait))

    def failed(self, client: str) -> None:
        """Count one failed authentication from `client`."""
        if not self.per_minute:
            return
        if client not in self._failures and len(self._failures) >= self.MAX_TRACKED:
            self._forget_forgiven()
        bucket = self._failures.setdefault(client, TokenBucket(self.per_minute, self._clock))
        bucket.take(1)

    def _forget_forgiven(self) -> None:
        for client, bucket in list(self._failures.items()):
            if bucket.wait_for(bucket.capacity) <= 0:
                del self._failures[client]


def too_many_failures(client: str, retry_after: int) -> str:
    """The sentence a client gets after too many failed authentications."""
    return (
        f"Too many failed authentications from {client or 'this address'}:"
        f" try again in {retry_after} s."
    )


def refusal(user: str, retry_after: int) -> str:
    """The sentence a rate-limited caller gets, on every surface (HTTP, MCP)."""
    return f"Rate limit reached for {user}: try again in {retry_after} s."


def refusal_record(
    user: str, role: str, retry_after: int, *, tool: str = "", **detail: str
) -> AuditRecord:
    """The audit row for a refused request; `detail` says where it came from."""
    return AuditRecord(
        "rate_limit",
        user=user,
        role=role,
        tool=tool,
        success=False,
        error=f"rate limit: retry after {retry_after}s",
        detail=detail,
    )
