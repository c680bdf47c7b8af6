"""The thread index: which threads exist, whose they are, and what they are about."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from tools.database import Connection, open_migrated
from tools.migrations import Migration
from tools.postgres import pg_schema
from tools.sqlite import fetch_all, fetch_one, now_iso

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
TtlStrategy = Literal["delete", "keep_latest"]
TitleSource = Literal["first", "summary", "user"]
SortBy = Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"]

COLUMNS = (
    "thread_id, owner, title, status, interrupt, history_floor, metadata, created_at, updated_at,"
    " ttl_strategy, ttl_minutes, ttl_expires_at, title_source, first_message"
)
# The index keeps one change time; `state_updated_at` sorts like it (as langgraph dev does).
_SORT_COLUMNS: dict[str, str] = {
    "thread_id": "thread_id",
    "status": "status",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "state_updated_at": "updated_at",
}

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

# Thread TTLs (`{"strategy", "ttl"}` on create or patch): when the sweeper acts on the thread.
# The owner/created_at index serves sorted searches and the per-owner count.
TTL = """
ALTER TABLE threads ADD COLUMN ttl_strategy TEXT
    CHECK (ttl_strategy IS NULL OR ttl_strategy IN ('delete', 'keep_latest'));
ALTER TABLE threads ADD COLUMN ttl_minutes REAL;
ALTER TABLE threads ADD COLUMN ttl_expires_at TEXT;
CREATE INDEX IF NOT EXISTS threads_ttl ON threads (ttl_expires_at)
    WHERE ttl_expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS threads_owner_created ON threads (owner, created_at);
"""

# Titles for people: where the title came from ('first': the first message, not summarised
# yet; 'summary': summarised from the first turn; 'user': set by the user, never overwritten)
# and the first message itself, which a title search also matches.
TITLES = """
ALTER TABLE threads ADD COLUMN title_source TEXT NOT NULL DEFAULT 'first'
    CHECK (title_source IN ('first', 'summary', 'user'));
ALTER TABLE threads ADD COLUMN first_message TEXT NOT NULL DEFAULT '';
UPDATE threads SET first_message = title;
"""

MIGRATIONS: list[Migration] = [SCHEMA, TTL, TITLES]
PG_MIGRATIONS: list[Migration] = [
    pg_schema(SCHEMA, rowid=("threads",)),
    pg_schema(TTL),
    pg_schema(TITLES),
]
"""The thread index's schema versions, oldest first (see `tools.migrations.migrate`)."""


# A thread id's first characters, as a person copies them from a listing (ids are uuids).
ID_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]{3,35}")


class UnresolvedPrefix(ValueError):
    """An id prefix that is malformed (422), names no thread (404) or several (409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
    ttl_strategy: TtlStrategy | None = None
    ttl_minutes: float | None = None
    ttl_expires_at: str | None = None
    title_source: TitleSource = "first"
    first_message: str = ""

    @property
    def ttl(self) -> dict[str, Any] | None:
        """The thread's TTL as langgraph-api shows it (`?include=ttl`), or None."""
        if self.ttl_strategy is None:
            return None
        return {
            "strategy": self.ttl_strategy,
            "ttl_minutes": self.ttl_minutes,
            "expires_at": self.ttl_expires_at,
        }


def expiry_stamp(moment: datetime) -> str:
    """A TTL expiry as stored: UTC ISO-8601 to the microsecond, so stamps sort as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class ThreadIndex:
    """Threads by owner, kept beside the checkpoints so listing never scans them."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(
        cls, path: Path, *, busy_timeout_ms: int, synchronous: str, database_url: str | None = None
    ) -> ThreadIndex:
        """Open (and create or migrate) the index at `path`.

        Raises RuntimeError when the file's thread index is newer than this code knows.
        """
        conn = await open_migrated(
            path,
            "threads",
            MIGRATIONS,
            PG_MIGRATIONS,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=synchronous,
            database_url=database_url,
        )
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
            "INSERT INTO threads"
            " (thread_id, owner, title, first_message, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'busy', ?, ?)"
            " ON CONFLICT (thread_id) DO UPDATE SET status = 'busy', interrupt = NULL,"
            " updated_at = excluded.updated_at,"
            " first_message = CASE WHEN threads.first_message = '' THEN excluded.first_message"
            " ELSE threads.first_message END",
            (thread_id, owner, title[:80], title[:200], stamp, stamp),
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
                "INSERT INTO threads"
                " (thread_id, owner, title, first_message, metadata, created_at, updated_at)"
                " SELECT ?, ?, ?, ?, ?, ?, ?"
                # Typed: PostgreSQL cannot infer a type for a parameter bound to NULL.
                " WHERE CAST(? AS INTEGER) IS NULL"
                " OR (SELECT COUNT(*) FROM threads WHERE owner = ?) < CAST(? AS INTEGER)"
                " ON CONFLICT (thread_id) DO NOTHING",
                (
                    thread_id,
                    owner,
                    title[:80],
                    title[:200],
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

    async def count(
        self,
        owner: str,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> int:
        """Return how many threads `owner` has (those matching the filters, when given)."""
        where, params = _filters(owner, metadata, status, None)
        row = await fetch_one(
            self._conn, f"SELECT COUNT(*) FROM threads WHERE {where}", tuple(params)
        )
        return int(row[0]) if row else 0

    async def set_ttl(
        self, thread_id: str, strategy: TtlStrategy, minutes: float, *, now: datetime | None = None
    ) -> None:
        """Give the thread a TTL: the sweeper applies `strategy` once `minutes` have passed."""
        expires = expiry_stamp((now or datetime.now(UTC)) + timedelta(minutes=minutes))
        await self._conn.execute(
            "UPDATE threads SET ttl_strategy = ?, ttl_minutes = ?, ttl_expires_at = ?"
            " WHERE thread_id = ?",
            (strategy, minutes, expires, thread_id),
        )

    async def expired(self, now: datetime, limit: int) -> list[ThreadInfo]:
        """Return up to `limit` threads whose TTL ran out by `now`, the longest expired first."""
        return [
            _info(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {COLUMNS} FROM threads WHERE ttl_expires_at IS NOT NULL"
                " AND ttl_expires_at <= ? ORDER BY ttl_expires_at LIMIT ?",
                (expiry_stamp(now), limit),
            )
        ]

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
        ids: list[str] | None = None,
        sort_by: SortBy | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
        limit: int | None = 10,
        offset: int = 0,
    ) -> list[ThreadInfo]:
        """Return `owner`'s threads matching every filter, sorted (newest change first).

        `metadata` matches threads whose metadata has every given key with that value; `ids`
        keeps only those threads; `limit=None` returns every match.
        """
        where, params = _filters(owner, metadata, status, ids)
        column = _SORT_COLUMNS[sort_by or "updated_at"]
        direction = "ASC" if sort_order == "asc" else "DESC"
        page = "" if limit is None else " LIMIT ? OFFSET ?"
        bounds: tuple[Any, ...] = () if limit is None else (limit, offset)
        return [
            _info(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {COLUMNS} FROM threads WHERE {where}"
                f" ORDER BY {column} {direction}, rowid {direction}{page}",
                (*params, *bounds),
            )
        ]

    async def set_title(self, thread_id: str, title: str, source: TitleSource) -> bool:
        """Title the thread; return whether it changed.

        A summary replaces only a first-message title, so a title the user set is never
        overwritten, not even by a turn that ends while the user renames the thread.
        """
        cursor = await self._conn.execute(
            "UPDATE threads SET title = ?, title_source = ?"
            " WHERE thread_id = ? AND (? != 'summary' OR title_source = 'first')",
            (title, source, thread_id, source),
        )
        return cursor.rowcount == 1

    async def find(self, owner: str, *, query: str = "", limit: int = 50) -> list[ThreadInfo]:
        """Return `owner`'s threads whose title or first message holds `query`, newest first.

        The match ignores case (ASCII letters, as SQLite's LIKE does); `%` and `_` in the
        query are plain characters.
        """
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return [
            _info(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {COLUMNS} FROM threads WHERE owner = ?"
                " AND (? = '' OR title LIKE ? ESCAPE '\\' OR first_message LIKE ? ESCAPE '\\')"
                " ORDER BY updated_at DESC, rowid DESC LIMIT ?",
                (owner, query, pattern, pattern, limit),
            )
        ]

    async def with_prefix(self, owner: str, prefix: str, limit: int = 10) -> list[ThreadInfo]:
        """Return up to `limit` of `owner`'s threads whose id starts with `prefix`."""
        return [
            _info(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {COLUMNS} FROM threads WHERE owner = ? AND substr(thread_id, 1, ?) = ?"
                " ORDER BY updated_at DESC, rowid DESC LIMIT ?",
                (owner, len(prefix), prefix, limit),
            )
        ]

    async def resolve(self, owner: str, prefix: str) -> ThreadInfo:
        """Return `owner`'s one thread whose id starts with `prefix` (case ignored).

        Raises UnresolvedPrefix, saying why in a sentence, for a prefix that is not at least
        4 characters of an id, or that starts none or several of the owner's threads.
        """
        wanted = prefix.strip().lower()
        if not ID_PREFIX.fullmatch(wanted):
            raise UnresolvedPrefix(
                422, "Give at least the first 4 characters of a thread id (0-9, a-f and dashes)."
            )
        found = await self.with_prefix(owner, wanted, limit=6)
        if not found:
            raise UnresolvedPrefix(404, f"No thread of yours starts with {wanted}.")
        if len(found) > 1:
            shown = found[:5]
            listed = "; ".join(f'{t.thread_id} "{t.title}"' for t in shown)
            more = " and more" if len(found) > len(shown) else ""
            raise UnresolvedPrefix(
                409,
                f"{wanted} starts more than one of your threads: {listed}{more}; give more of it.",
            )
        return found[0]

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


def _filters(
    owner: str, metadata: dict[str, Any] | None, status: str | None, ids: list[str] | None
) -> tuple[str, list[Any]]:
    where, params = ["owner = ?"], [owner]
    if status:
        where.append("status = ?")
        params.append(status)
    if ids is not None:
        where.append("thread_id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(ids))
    for key, value in (metadata or {}).items():
        # The key is bound as a value, never spliced into a JSON path: any key is safe.
        where.append(
            "EXISTS (SELECT 1 FROM json_each(threads.metadata) AS m"
            " WHERE m.key = ? AND m.value IS json_extract(?, '$'))"
        )
        params += [key, json.dumps(value)]
    return " AND ".join(where), params


def _info(row: Any) -> ThreadInfo:
    values = list(row)
    values[4] = json.loads(values[4]) if values[4] else None
    values[6] = json.loads(values[6] or "{}")
    return ThreadInfo(*values)


def json_contains(whole: Any, part: Any) -> bool:
    """Whether `part` is contained in `whole` the way langgraph-api filters values.

    Objects match when each of `part`'s keys is in `whole` with a contained value; anything
    else must be equal.
    """
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(key in whole and json_contains(whole[key], value) for key, value in part.items())
    return bool(whole == part)
