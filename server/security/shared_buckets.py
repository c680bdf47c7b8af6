"""Token buckets in PostgreSQL, shared by every replica (when `DATABASE_URL` is set).

One row per bucket: its level and the wall-clock time it was last brought up to date
(`time.time()`: replicas are different machines, so a monotonic clock means nothing to
another one). A missing row is a full bucket. A conditional take locks the row for its
decision, so two replicas never both spend the last token; an unconditional one (a run's
model tokens) is one upsert. The arithmetic is `TokenBucket`'s.

Rows of full buckets carry nothing: each replica deletes them now and then, so addresses
that once failed to authenticate do not pile up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from tools.database import POOL_MAX_SIZE, acquire_pool, release_pool
from tools.migrations import Migration, migrate
from tools.postgres import PgConnection

PG_MIGRATIONS: Sequence[Migration] = (
    """
    CREATE TABLE IF NOT EXISTS rate_buckets (
        key TEXT PRIMARY KEY,
        level DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL
    )
    """,
)

# How often (seconds) a replica deletes the rows of full buckets.
SWEEP_S = 60.0

# The level now: refilled at `capacity` per minute since `updated`, never above capacity. A
# replica whose clock is behind the row's refills nothing rather than draining it.
_REFILLED = "LEAST(%(capacity)s, b.level + GREATEST(0, %(now)s - b.updated) * %(capacity)s / 60)"
_UPSERT = f"""
    INSERT INTO rate_buckets AS b (key, level, updated)
    VALUES (%(key)s, %(capacity)s - %(amount)s, %(now)s)
    ON CONFLICT (key) DO UPDATE SET
        level = {_REFILLED} - %(amount)s,
        updated = GREATEST(b.updated, %(now)s)
"""
TAKE = f"{_UPSERT} RETURNING level"
# A missing row is a full bucket: made so, then locked for one decision.
ENSURE = (
    "INSERT INTO rate_buckets (key, level, updated) VALUES (%(key)s, %(capacity)s, %(now)s)"
    " ON CONFLICT (key) DO NOTHING"
)
LOCK = "SELECT level, updated FROM rate_buckets WHERE key = %(key)s FOR UPDATE"
SET = (
    "UPDATE rate_buckets SET level = %(level)s, updated = GREATEST(updated, %(now)s)"
    " WHERE key = %(key)s"
)
WAIT_FOR = f"""
    SELECT GREATEST(0, (%(amount)s - {_REFILLED}) * 60 / %(capacity)s) AS wait
    FROM rate_buckets AS b WHERE key = %(key)s
"""
# Full whatever the capacity: not in debt, and a minute of refilling since.
SWEEP = "DELETE FROM rate_buckets WHERE level >= 0 AND updated <= %(now)s - 60"


class SharedBuckets:
    """Token buckets by key in PostgreSQL; the same interface as `MemoryBuckets`."""

    def __init__(self, conn: PgConnection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._clock = clock
        self._swept = clock()

    @classmethod
    async def open(
        cls,
        database_url: str,
        clock: Callable[[], float] = time.time,
        *,
        pool_size: int = POOL_MAX_SIZE,
    ) -> SharedBuckets:
        """Open (and create) the buckets table on the replica's pool (sized by its first user)."""
        pool = await acquire_pool(database_url, max_size=pool_size)
        conn = PgConnection(pool, "rate_buckets", on_close=lambda: release_pool(database_url))
        try:
            await migrate(conn, "rate_buckets", [], PG_MIGRATIONS)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, clock)

    async def close(self) -> None:
        """Give back this store's use of the pool."""
        await self._conn.close()

    async def wait_for(self, key: str, capacity: float, amount: float) -> float:
        """Seconds until `amount` is available in bucket `key` (0 if it is now)."""
        rows = await self._run(WAIT_FOR, key, capacity, amount)
        return float(rows[0]["wait"]) if rows else 0.0

    async def take(self, key: str, capacity: float, amount: float) -> None:
        """Remove `amount` from bucket `key` (the level may go below zero)."""
        await self._run(TAKE, key, capacity, amount)
        await self._sweep_now_and_then()

    async def take_if_ready(self, key: str, capacity: float, amount: float) -> float:
        """Remove `amount` if it is available and return 0, else return the seconds to wait.

        The bucket's row is locked for the decision (created full first if missing), so
        takes from every replica line up: the last token goes once.
        """
        now = self._clock()
        params = {"key": key, "capacity": float(capacity), "now": now}
        async with self._conn.pool.connection() as conn, conn.transaction():
            await conn.execute(ENSURE, params)
            cur = await conn.execute(LOCK, params)
            row = await cur.fetchone()
            assert row is not None  # ensured above, in this transaction
            level = min(capacity, row["level"] + max(0.0, now - row["updated"]) * capacity / 60)
            wait = 0.0 if level >= amount else (amount - level) * 60 / capacity
            if wait == 0.0:
                level -= amount
            await conn.execute(SET, params | {"level": level})
        await self._sweep_now_and_then()
        return wait

    async def _run(
        self, sql: str, key: str, capacity: float, amount: float
    ) -> list[dict[str, Any]]:
        params = {
            "key": key,
            "capacity": float(capacity),
            "amount": float(amount),
            "now": self._clock(),
        }
        # PostgreSQL-only statements with named parameters: straight to the pool, untranslated.
        async with self._conn.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description is not None else []

    async def _sweep_now_and_then(self) -> None:
        now = self._clock()
        if now - self._swept < SWEEP_S:
            return
        self._swept = now
        async with self._conn.pool.connection() as conn:
            await conn.execute(SWEEP, {"now": now})
