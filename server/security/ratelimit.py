"""Rate limits as token buckets: requests and model tokens per user, failed logins per address.

Each bucket refills at its limit per minute. On SQLite the buckets live in the process, as
they always have (no write per request); with `DATABASE_URL` in PostgreSQL
(`server/security/shared_buckets.py`), so that N replicas behind a balancer enforce one
limit, not N.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from graph import metrics
from graph.settings import Settings
from server.security.shared_buckets import SharedBuckets
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


class Buckets(Protocol):
    """Token buckets by key, each refilling at its `capacity` per minute; a missing one is full.

    `MemoryBuckets` keeps them in the process; `SharedBuckets` in PostgreSQL, for replicas.
    """

    async def wait_for(self, key: str, capacity: float, amount: float) -> float:
        """Seconds until `amount` is available in bucket `key` (0 if it is now)."""
        ...

    async def take(self, key: str, capacity: float, amount: float) -> None:
        """Remove `amount` from bucket `key` (the level may go below zero)."""
        ...

    async def take_if_ready(self, key: str, capacity: float, amount: float) -> float:
        """Remove `amount` if it is available and return 0, else return the seconds to wait."""
        ...


class MemoryBuckets:
    """Token buckets in this process; beyond `max_tracked` keys the full ones are dropped."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_tracked: int | None = None
    ) -> None:
        self._clock = clock
        self._max_tracked = max_tracked
        self._buckets: dict[str, TokenBucket] = {}

    async def wait_for(self, key: str, capacity: float, amount: float) -> float:
        """Seconds until `amount` is available in bucket `key` (0 if it is now)."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait_for(amount)

    async def take(self, key: str, capacity: float, amount: float) -> None:
        """Remove `amount` from bucket `key` (the level may go below zero)."""
        self._bucket(key, capacity).take(amount)

    async def take_if_ready(self, key: str, capacity: float, amount: float) -> float:
        """Remove `amount` if it is available and return 0, else return the seconds to wait."""
        bucket = self._bucket(key, capacity)
        wait = bucket.wait_for(amount)
        if wait <= 0:
            bucket.take(amount)
        return wait

    def _bucket(self, key: str, capacity: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if self._max_tracked is not None and len(self._buckets) >= self._max_tracked:
                self._forget_full()
            bucket = self._buckets[key] = TokenBucket(capacity, self._clock)
        return bucket

    def _forget_full(self) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.wait_for(bucket.capacity) <= 0:
                del self._buckets[key]


class RateLimiter:
    """Requests and model tokens per minute per user; a limit of 0 is no limit.

    The buckets are this process's unless `buckets` (the replicas' shared ones) is given.
    """

    def __init__(
        self,
        rpm: int,
        tpm: int,
        buckets: Buckets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._buckets: Buckets = buckets if buckets is not None else MemoryBuckets(clock)

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return bool(self.rpm or self.tpm)

    async def admit(self, user: str) -> int | None:
        """Count a request; return None if admitted, else whole seconds to wait (Retry-After)."""
        waits: dict[str, float] = {}
        if self.tpm:
            # Token debt from earlier runs must be paid back before new work starts.
            waits["tokens"] = await self._buckets.wait_for(f"tokens:{user}", self.tpm, 1)
        if self.rpm:
            requests = f"requests:{user}"
            if max(waits.values(), default=0.0) > 0:
                waits["requests"] = await self._buckets.wait_for(requests, self.rpm, 1)
            else:  # counted in the same step as checked: replicas cannot both take the last
                waits["requests"] = await self._buckets.take_if_ready(requests, self.rpm, 1)
        wait = max(waits.values(), default=0.0)
        if wait > 0:
            metrics.RATE_LIMIT_REJECTIONS.labels(max(waits, key=waits.__getitem__)).inc()
            return max(1, math.ceil(wait))
        return None

    async def spend_tokens(self, user: str, tokens: int) -> None:
        """Charge the model tokens a run used to the user's per-minute budget."""
        if self.tpm and tokens:
            await self._buckets.take(f"tokens:{user}", self.tpm, tokens)


class AuthFailureLimiter:
    """Failed authentications per client address per minute; 0 is no limit.

    Past the limit every request from the address is refused, with or without a right key,
    until the bucket refills: guessing keys gets one try every 60/limit seconds. The
    buckets are this process's unless `buckets` (the replicas' shared ones) is given.
    """

    MAX_TRACKED = 10_000  # addresses kept in memory; the full (forgiven) ones are dropped beyond

    def __init__(
        self,
        per_minute: int,
        buckets: Buckets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._buckets: Buckets = (
            buckets if buckets is not None else MemoryBuckets(clock, self.MAX_TRACKED)
        )

    async def retry_after(self, client: str) -> int | None:
        """Return None if `client` may try to authenticate, else whole seconds to wait."""
        if not self.per_minute:
            return None
        wait = await self._buckets.wait_for(f"auth:{client}", self.per_minute, 1)
        if wait <= 0:
            return None
        metrics.RATE_LIMIT_REJECTIONS.labels("auth_failures").inc()
        return max(1, math.ceil(wait))

    async def failed(self, client: str) -> None:
        """Count one failed authentication from `client`."""
        if self.per_minute:
            await self._buckets.take(f"auth:{client}", self.per_minute, 1)


@dataclass
class Limiters:
    """A process's rate limiter and failed-authentication limiter, and what they share."""

    requests: RateLimiter
    auth_failures: AuthFailureLimiter
    shared: SharedBuckets | None = None

    @classmethod
    async def open(cls, settings: Settings) -> Limiters:
        """In memory on SQLite (no write per request); on PostgreSQL, one set for all replicas."""
        shared = (
            await SharedBuckets.open(settings.postgres_url, pool_size=settings.pg_pool_size)
            if settings.postgres_url
            else None
        )
        return cls(
            RateLimiter(settings.rate_limit_rpm, settings.rate_limit_tpm, shared),
            AuthFailureLimiter(settings.auth_failures_per_minute, shared),
            shared,
        )

    async def close(self) -> None:
        """Let go of the shared buckets' database, if any."""
        if self.shared is not None:
            await self.shared.close()


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
