"""The replica's one PostgreSQL pool: sized by TASKAGENT_PG_POOL_SIZE, shared by every store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from graph.settings import Settings
from server.runs.engine import RunManager
from server.security.ratelimit import Limiters


async def connections(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid != pg_backend_pid()"
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_a_busy_replica_opens_no_more_connections_than_its_pool_size(
    tmp_path: Path, pg_url: str
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        DATABASE_URL=pg_url,
        TASKAGENT_PG_POOL_SIZE=3,
    )
    # In the order the server opens them: the limiters' buckets first, then the engine.
    limiters = await Limiters.open(settings)
    runs = await RunManager.open(settings, limiters.requests, start=False)
    try:
        # Forty slow statements at once through the stores: the pool makes them queue.
        await asyncio.gather(
            *(runs.store._conn.execute("SELECT pg_sleep(0.05)") for _ in range(40))
        )
        # Three pooled connections plus the one that listens for other replicas' wake-ups.
        assert await connections(pg_url) <= 3 + 1
    finally:
        await runs.close()
        await limiters.close()
    assert await connections(pg_url) == 0
