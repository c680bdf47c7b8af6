"""The thread index: which threads exist, whose they are, and what they are about."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from tools.sqlite import open_sqlite
from tools.store import now_iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_owner ON threads (owner, updated_at);
"""


@dataclass(frozen=True)
class ThreadInfo:
    """One row of the thread index."""

    thread_id: str
    owner: str
    title: str
    created_at: str
    updated_at: str


class ThreadIndex:
    """Threads by owner, kept beside the checkpoints so listing never scans them."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int, synchronous: str) -> ThreadIndex:
        """Open (and create) the index at `path`."""
        conn = await open_sqlite(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        await conn.executescript(SCHEMA)
        return cls(conn)

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def get(self, thread_id: str) -> ThreadInfo | None:
        """Return the thread, or None if it does not exist."""
        async with self._conn.execute(
            "SELECT thread_id, owner, title, created_at, updated_at FROM threads"
            " WHERE thread_id = ?",
            (thread_id,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else ThreadInfo(*row)

    async def touch(self, thread_id: str, owner: str, title: str) -> None:
        """Record activity on a thread, creating it with `title` if new."""
        stamp = now_iso()
        await self._conn.execute(
            "INSERT INTO threads (thread_id, owner, title, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (thread_id) DO UPDATE SET updated_at = excluded.updated_at",
            (thread_id, owner, title[:80], stamp, stamp),
        )

    async def list(self, owner: str, limit: int = 50) -> list[ThreadInfo]:
        """Return `owner`'s threads, most recently active first."""
        async with self._conn.execute(
            "SELECT thread_id, owner, title, created_at, updated_at FROM threads"
            " WHERE owner = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?",
            (owner, limit),
        ) as cur:
            return [ThreadInfo(*row) for row in await cur.fetchall()]
