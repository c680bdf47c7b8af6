"""The thread index: which threads exist, whose they are, and what they are about."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from tools.migrations import Migration, migrate
from tools.sqlite import fetch_all, fetch_one, now_iso, open_sqlite

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]

COLUMNS = (
    "thread_id, owner, title, status, interrupt, history_floor, metadata, created_at, updated_at"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'idle'
        CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    interrupt TEXT,
    history_floor TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_owner ON threads (owner, updated_at);
"""

MIGRATIONS: list[Migration] = [SCHEMA]
"""The thread index's schema versions, oldest first (see `tools.migrations.migrate`)."""


class ThreadLimitReached(Exception):
    """The owner already has as many threads as allowed; nothing was created."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"thread limit {limit} reached")
        self.limit = limit


@dataclass(frozen=True)
class ThreadInfo:
    """One row of the thread index."""

    thread_id: str
    owner: str
    title: str
    status: ThreadStatus
    interrupt: dict[str, Any] | None
    history_floor: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class ThreadIndex:
    """Threads by owner, kept beside the checkpoints so listing never scans them."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int, synchronous: str) -> ThreadIndex:
        """Open (and create or migrate) the index at `path`.

        Raises RuntimeError when the file's thread index is newer than this code knows.
        """
        conn = await open_sqlite(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        try:
            await migrate(conn, "threads", MIGRATIONS)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def get(self, thread_id: str) -> ThreadInfo | None:
        """Return the thread, or None if it does not exist."""
        row = await fetch_one(
            self._conn, f"SELECT {COLUMNS} FROM threads WHERE thread_id = ?", (thread_id,)
        )
        return None if row is None else _info(row)

    async def start_run(self, thread_id: str, owner: str, title: str) -> None:
        """Mark the thread busy (creating it, titled `title`, if new)."""
        stamp = now_iso()
        await self._conn.execute(
            "INSERT INTO threads (thread_id, owner, title, status, created_at, updated_at)"
            " VALUES (?, ?, ?, 'busy', ?, ?)"
            " ON CONFLICT (thread_id) DO UPDATE SET status = 'busy', interrupt = NULL,"
            " updated_at = excluded.updated_at",
            (thread_id, owner, title[:80], stamp, stamp),
        )

    async def finish_run(
        self, thread_id: str, status: ThreadStatus, interrupt: dict[str, Any] | None = None
    ) -> None:
        """Record how the thread's run ended and the approval it waits for, if any."""
        await self._conn.execute(
            "UPDATE threads SET status = ?, interrupt = ?, updated_at = ? WHERE thread_id = ?",
            (status, json.dumps(interrupt) if interrupt else None, now_iso(), thread_id),
        )

    async def create(
        self,
        thread_id: str,
        owner: str,
        metadata: dict[str, Any] | None = None,
        *,
        title: str = "",
        limit: int | None = None,
    ) -> tuple[ThreadInfo, bool]:
        """Create an idle thread, or find the one that has the id; return it and whether it is new.

        The existence check, the owner's thread count and the insert are one statement, so
        concurrent creations of one id all get the same thread and `limit` is never overshot.
        Raises ThreadLimitReached, creating nothing, when `owner` already has `limit` threads.
        """
        while True:
            stamp = now_iso()
            cursor = await self._conn.execute(
                "INSERT INTO threads (thread_id, owner, title, metadata, created_at, updated_at)"
                " SELECT ?, ?, ?, ?, ?, ?"
                " WHERE ? IS NULL OR (SELECT COUNT(*) FROM threads WHERE owner = ?) < ?"
                " ON CONFLICT (thread_id) DO NOTHING",
                (
                    thread_id,
                    owner,
                    title[:80],
                    json.dumps(metadata or {}),
                    stamp,
                    stamp,
                    limit,
                    owner,
                    limit,
                ),
            )
            info = await self.get(thread_id)
            if info is not None:
                return info, cursor.rowcount == 1
            assert limit is not None  # without a limit the insert or the clash leaves a row
            if await self.count(owner) >= limit:
                raise ThreadLimitReached(limit)
            # The clashing thread was deleted between the two statements: try again.

    async def count(self, owner: str) -> int:
        """Return how many threads `owner` has."""
        row = await fetch_one(self._conn, "SELECT COUNT(*) FROM threads WHERE owner = ?", (owner,))
        return int(row[0]) if row else 0

    async def update_metadata(
        self, thread_id: str, metadata: dict[str, Any], *, max_bytes: int | None = None
    ) -> bool:
        """Merge `metadata` into the thread's metadata; False if the result passes `max_bytes`.

        The merge and the size check are one statement, so concurrent patches that each fit
        cannot together grow a thread past the limit.
        """
        patch = json.dumps(metadata)
        cursor = await self._conn.execute(
            "UPDATE threads SET metadata = json_patch(metadata, ?), updated_at = ?"
            " WHERE thread_id = ? AND (? IS NULL OR"
            " length(CAST(json_patch(metadata, ?) AS BLOB)) <= ?)",
            (patch, now_iso(), thread_id, max_bytes, patch, max_bytes),
        )
        return cursor.rowcount == 1

    async def delete(self, thread_id: str) -> None:
        """Forget the thread."""
        await self._conn.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))

    async def search(
        self,
        owner: str,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[ThreadInfo]:
        """Return `owner`'s threads whose metadata contains every given key/value."""
        where, params = ["owner = ?"], [owner]
        if status:
            where.append("status = ?")
            params.append(status)
        for key, value in (metadata or {}).items():
            # The key is bound as a value, never spliced into a JSON path: any key is safe.
            where.append(
                "EXISTS (SELECT 1 FROM json_each(threads.metadata) AS m"
                " WHERE m.key = ? AND m.value IS json_extract(?, '$'))"
            )
            params += [key, json.dumps(value)]
        return [
            _info(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {COLUMNS} FROM threads WHERE {' AND '.join(where)}"
                " ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
        ]

    async def set_history_floor(self, thread_id: str, checkpoint_id: str) -> None:
        """Remember the checkpoint below which the thread's history has been pruned."""
        await self._conn.execute(
            "UPDATE threads SET history_floor = ? WHERE thread_id = ?", (checkpoint_id, thread_id)
        )

    async def list(self, owner: str, limit: int = 50) -> list[ThreadInfo]:
        """Return `owner`'s threads, most recently active first."""
        return [
            _info(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {COLUMNS} FROM threads"
                " WHERE owner = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?",
                (owner, limit),
            )
        ]


def _info(row: Any) -> ThreadInfo:
    values = list(row)
    values[4] = json.loads(values[4]) if values[4] else None
    values[6] = json.loads(values[6] or "{}")
    return ThreadInfo(*values)
