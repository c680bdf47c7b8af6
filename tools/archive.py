"""Archived messages: what the router trimmed from a thread's window, kept for its history."""

from __future__ import annotations

from tools.database import Connection
from tools.migrations import Migration
from tools.postgres import pg_schema
from tools.sqlite import fetch_all, fetch_one

SCHEMA = """
CREATE TABLE IF NOT EXISTS message_archive (
    thread_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (thread_id, message_id)
);
"""

MIGRATIONS: list[Migration] = [SCHEMA]
PG_MIGRATIONS: list[Migration] = [pg_schema(SCHEMA)]
"""The archive's schema versions, oldest first (see `tools.migrations.migrate`)."""


async def append_messages(
    conn: Connection, thread_id: str, messages: list[tuple[str, str]]
) -> None:
    """Append (message_id, json) pairs after the thread's last (inside the caller's transaction).

    A message already archived keeps its place.
    """
    row = await fetch_one(
        conn,
        "SELECT COALESCE(MAX(seq), 0) FROM message_archive WHERE thread_id = ?",
        (thread_id,),
    )
    start = int(row[0]) if row else 0
    await conn.executemany(
        "INSERT OR IGNORE INTO message_archive (thread_id, message_id, seq, message)"
        " VALUES (?, ?, ?, ?)",
        [(thread_id, mid, start + i + 1, body) for i, (mid, body) in enumerate(messages)],
    )


async def delete_messages(conn: Connection, thread_id: str) -> None:
    """Forget a thread's archived messages."""
    await conn.execute("DELETE FROM message_archive WHERE thread_id = ?", (thread_id,))


async def thread_messages(conn: Connection, thread_id: str) -> list[str]:
    """Return the archived message JSON documents of `thread_id`, oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT message FROM message_archive WHERE thread_id = ? ORDER BY seq",
        (thread_id,),
    )
    return [str(row[0]) for row in rows]
