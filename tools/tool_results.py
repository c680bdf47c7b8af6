"""Exactly-once tool results and the approval questions a step showed, in SQLite."""

from __future__ import annotations

import json
from typing import Any

from tools.database import Connection
from tools.migrations import Migration, columns_of
from tools.postgres import pg_schema
from tools.sqlite import fetch_all, fetch_one, now_iso

SCHEMA = """
-- One row per executed mutation, keyed by the run's identity (see `call_key`), not by the
-- model's call id alone: providers reuse ids ("create_task:0") across users and turns.
CREATE TABLE IF NOT EXISTS tool_results (
    call_key TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- The approval questions a step showed, in the order it paused on them: an answer that names
-- no call (as LangGraph Studio sends it) answers the question shown at its position, never
-- a question the step derives differently after a task vanished or changed.
CREATE TABLE IF NOT EXISTS approvals_shown (
    step_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    approval_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (step_key, position)
);
"""


async def _key_by_run(conn: Connection) -> None:
    """Re-key results stored by the first release, which keyed them by the model's call id.

    That release recorded no schema version, so its table is known by its columns. Its rows
    keep their place under a `legacy:` key that no new call can produce, so they are never
    returned for a new call.
    """
    found = await columns_of(conn, "tool_results")
    if not found or "call_key" in found:
        return
    await conn.execute(
        "CREATE TABLE tool_results_v1 (call_key TEXT PRIMARY KEY, call_id TEXT NOT NULL,"
        " thread_id TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL, tool TEXT NOT NULL,"
        " arguments TEXT NOT NULL, result TEXT NOT NULL, created_at TEXT NOT NULL)"
    )
    await conn.execute(
        "INSERT INTO tool_results_v1 (call_key, call_id, owner, tool, arguments, result,"
        " created_at) SELECT 'legacy:' || call_id, call_id, owner, tool, arguments, result,"
        " created_at FROM tool_results"
    )
    await conn.execute("DROP TABLE tool_results")
    await conn.execute("ALTER TABLE tool_results_v1 RENAME TO tool_results")


MIGRATIONS: list[Migration] = [_key_by_run, SCHEMA]
PG_MIGRATIONS: list[Migration] = ["", pg_schema(SCHEMA)]
"""The tool-results store's schema versions, oldest first (see `tools.migrations.migrate`)."""


def call_key(thread_id: str, checkpoint_ns: str, position: int, call_id: str) -> str:
    """Return the exactly-once key of one tool call made by one step of a graph run.

    `checkpoint_ns` is the step's task namespace, which ends with LangGraph's task id: that id
    is derived from the checkpoint the step started from, so a replay of the same step after
    a crash gets the same key, while any other step (another thread, a later turn, another
    model message) gets another. `position` keeps two calls of one message apart when the
    provider gave both the same id. JSON keeps the parts unambiguous whatever they contain.
    """
    return json.dumps([thread_id, checkpoint_ns, position, call_id])


async def stored_result(conn: Connection, key: str) -> dict[str, Any] | None:
    """Return the recorded result of the tool call keyed `key`, if it already ran."""
    row = await fetch_one(conn, "SELECT result FROM tool_results WHERE call_key = ?", (key,))
    return None if row is None else dict(json.loads(row[0]))


async def record_result(
    conn: Connection,
    key: str,
    *,
    call_id: str,
    thread_id: str,
    owner: str,
    tool: str,
    arguments: dict[str, Any],
    result: dict[str, Any],
) -> None:
    """Record a call's result inside the caller's transaction (the one that made the change)."""
    await conn.execute(
        "INSERT INTO tool_results (call_key, call_id, thread_id, owner, tool, arguments, result,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            call_id or key,
            thread_id,
            owner,
            tool,
            json.dumps(arguments),
            json.dumps(result),
            now_iso(),
        ),
    )


async def shown_approvals(conn: Connection, step_key: str) -> dict[int, str]:
    """Return the approval ids a step asked about, by the position of its pause."""
    rows = await fetch_all(
        conn,
        "SELECT position, approval_id FROM approvals_shown WHERE step_key = ?",
        (step_key,),
    )
    return {int(row[0]): str(row[1]) for row in rows}


async def record_shown(conn: Connection, step_key: str, position: int, approval_id: str) -> None:
    """Remember the question a step is about to pause on (kept if already recorded)."""
    await conn.execute(
        "INSERT OR IGNORE INTO approvals_shown (step_key, position, approval_id, created_at)"
        " VALUES (?, ?, ?, ?)",
        (step_key, position, approval_id, now_iso()),
    )
