"""Opening SQLite connections with the durability settings the whole service shares."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite


async def open_sqlite(
    path: Path, *, busy_timeout_ms: int, synchronous: str
) -> aiosqlite.Connection:
    """Open `path` in WAL mode with a busy timeout and the chosen `synchronous` level.

    WAL + synchronous=NORMAL keeps every committed transaction across a process kill
    (kill -9): the WAL is written before commit returns; only an OS crash or power
    loss can drop the newest commits, which FULL additionally protects against.
    """
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    await conn.execute(f"PRAGMA synchronous={synchronous}")
    await conn.execute("PRAGMA foreign_keys=ON")
    return conn


def now_iso() -> str:
    """Return the current UTC time as an ISO-8601 string with seconds precision."""
    return datetime.now(UTC).isoformat(timespec="seconds")


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    """Run a query and return every row in one step.

    The statement is finished before control returns, so no read snapshot stays open across an
    await: an open one would make this connection's next write fail at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT, which SQLite does not retry) when another connection commits.
    """
    return list(await conn.execute_fetchall(sql, tuple(params)))


async def fetch_one(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> Any:
    """Return the first row of a query, or None (see `fetch_all`)."""
    rows = await fetch_all(conn, sql, params)
    return rows[0] if rows else None
