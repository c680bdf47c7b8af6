"""The task store: tasks, idempotent tool results and the archived conversation, in SQLite."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from graph.redaction import Redactor
from tools.audit import (
    AGGREGATED_KINDS,
    AuditRecord,
    count_audit,
    insert_audit,
    query_audit,
    summarize,
)
from tools.audit import SCHEMA as AUDIT_SCHEMA
from tools.schemas import MAX_TEXT_WORDS
from tools.sqlite import fetch_all, fetch_one, now_iso, open_sqlite
from tools.usage import SCHEMA as USAGE_SCHEMA
from tools.usage import Totals, record_usage, run_tokens, totals

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed')),
    due_date TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (owner, status, due_date);
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
CREATE TABLE IF NOT EXISTS message_archive (
    thread_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (thread_id, message_id)
);
"""

SCHEMA_VERSION = 1

TASK_COLUMNS = (
    "id, title, description, priority, status, due_date, tags, created_at, updated_at, completed_at"
)

Mutation = Callable[[aiosqlite.Connection], Awaitable[dict[str, Any]]]


def call_key(thread_id: str, checkpoint_ns: str, position: int, call_id: str) -> str:
    """Return the exactly-once key of one tool call made by one step of a graph run.

    `checkpoint_ns` is the step's task namespace, which ends with LangGraph's task id: that id
    is derived from the checkpoint the step started from, so a replay of the same step after
    a crash gets the same key, while any other step (another thread, a later turn, another
    model message) gets another. `position` keeps two calls of one message apart when the
    provider gave both the same id. JSON keeps the parts unambiguous whatever they contain.
    """
    return json.dumps([thread_id, checkpoint_ns, position, call_id])


async def migrate(conn: aiosqlite.Connection) -> None:
    """Bring a store written by an older version up to `SCHEMA_VERSION`, in one transaction.

    Version 1 keys stored tool results (and the audit's once-per-call index) by the run's
    identity instead of the model's call id. Rows from before keep their place under a
    `legacy:` key that no new call can produce, so they are never returned for a new call.
    """
    await conn.execute("BEGIN IMMEDIATE")
    try:
        version = int((await fetch_one(conn, "PRAGMA user_version"))[0])
        if version < 1:
            await _migrate_to_1(conn)
        await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise


async def _columns(conn: aiosqlite.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in await fetch_all(conn, f"PRAGMA table_info({table})")}


async def _migrate_to_1(conn: aiosqlite.Connection) -> None:
    results = await _columns(conn, "tool_results")
    if results and "call_key" not in results:
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
    audit = await _columns(conn, "audit")
    if audit and "call_key" not in audit:
        await conn.execute("ALTER TABLE audit ADD COLUMN call_key TEXT NOT NULL DEFAULT ''")
        await conn.execute("DROP INDEX IF EXISTS audit_once")


class ToolError(Exception):
    """A problem the model should be told about in plain words (unknown id, bad date...).

    `details` go into the result next to the error (the candidates for an unclear task).
    """

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}

    def result(self) -> dict[str, Any]:
        """Return the tool result that reports this problem."""
        return {**self.details, "ok": False, "error": str(self)}


def _task(row: aiosqlite.Row | tuple[Any, ...]) -> dict[str, Any]:
    keys = [k.strip() for k in TASK_COLUMNS.split(",")]
    task = dict(zip(keys, row, strict=True))
    task["tags"] = json.loads(task["tags"])
    return task


class TaskStore:
    """Tasks per owner; every mutation is keyed by its run's identity and applied at most once."""

    def __init__(self, conn: aiosqlite.Connection, redactor: Redactor | None = None) -> None:
        self._conn = conn
        # Without the process's redactor, audit rows lose key-shaped values only.
        self.redactor = redactor or Redactor()
        # One aiosqlite connection runs statements in order, but a transaction spans several
        # awaits: the lock keeps two coroutines' transactions from interleaving.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        synchronous: str = "NORMAL",
        redactor: Redactor | None = None,
    ) -> TaskStore:
        """Open (and create if needed) the store at `path`; `redactor` scrubs audit rows."""
        conn = await open_sqlite(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        await migrate(conn)
        await conn.executescript(SCHEMA + AUDIT_SCHEMA + USAGE_SCHEMA)
        return cls(conn, redactor)

    async def close(self) -> None:
        """Close the underlying connection."""
        await self._conn.close()

    async def ping(self) -> bool:
        """Return True when the database answers a trivial query."""
        return (await fetch_one(self._conn, "SELECT 1")) is not None

    # --- approvals ---------------------------------------------------------------------

    async def shown_approvals(self, step_key: str) -> dict[int, str]:
        """Return the approval ids a step asked about, by the position of its pause."""
        rows = await fetch_all(
            self._conn,
            "SELECT position, approval_id FROM approvals_shown WHERE step_key = ?",
            (step_key,),
        )
        return {int(row[0]): str(row[1]) for row in rows}

    async def record_shown(self, step_key: str, position: int, approval_id: str) -> None:
        """Remember the question a step is about to pause on (kept if already recorded)."""
        async with self._lock:
            await self._conn.execute(
                "INSERT OR IGNORE INTO approvals_shown (step_key, position, approval_id,"
                " created_at) VALUES (?, ?, ?, ?)",
                (step_key, position, approval_id, now_iso()),
            )

    # --- idempotency -------------------------------------------------------------------

    async def stored_result(self, key: str) -> dict[str, Any] | None:
        """Return the recorded result of the tool call keyed `key`, if it already ran."""
        row = await fetch_one(
            self._conn, "SELECT result FROM tool_results WHERE call_key = ?", (key,)
        )
        return None if row is None else dict(json.loads(row[0]))

    async def apply_once(
        self,
        key: str,
        owner: str,
        tool: str,
        arguments: dict[str, Any],
        mutation: Mutation,
        audit: AuditRecord | None = None,
        *,
        call_id: str = "",
        thread_id: str = "",
    ) -> dict[str, Any]:
        """Run `mutation` and record its result in one transaction, unless `key` already ran.

        `key` identifies the call within its run (see `call_key`); `call_id` is the model's
        own id, kept for the record. The side effect, its result and its audit row commit
        together, so after a crash a call either happened (and replays its stored result) or
        did not happen at all, and executed calls always equal audit rows.
        """
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = await fetch_one(
                    self._conn, "SELECT result FROM tool_results WHERE call_key = ?", (key,)
                )
                if row is not None:
                    await self._conn.execute("ROLLBACK")
                    return dict(json.loads(row[0]))
                started = time.perf_counter()
                try:
                    result = await mutation(self._conn)
                except ToolError as exc:
                    result = exc.result()
                await self._conn.execute(
                    "INSERT INTO tool_results (call_key, call_id, thread_id, owner, tool,"
                    " arguments, result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
                if audit is not None:
                    await insert_audit(
                        self._conn,
                        completed(audit, result, time.perf_counter() - started),
                        self.redactor,
                    )
                await self._conn.execute("COMMIT")
                return result
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise

    # --- audit ---------------------------------------------------------------------------

    async def audit(self, record: AuditRecord) -> None:
        """Append an audit row on its own (failed logins and refusals count per window)."""
        async with self._lock:
            if record.kind in AGGREGATED_KINDS:
                await count_audit(self._conn, record, self.redactor)
            else:
                await insert_audit(self._conn, record, self.redactor)

    async def login_failed(self, path: str, client: str, peer: str | None = None) -> None:
        """Audit a missing or wrong key, one row per client a minute (`peer`: socket address)."""
        detail = {"path": path, "client": client}
        if peer is not None:
            detail["peer"] = peer
        await self.audit(AuditRecord("login_failed", user="?", success=False, detail=detail))

    async def audit_rows(self, **filters: Any) -> list[dict[str, Any]]:
        """Return audit rows, newest first (see `query_audit` for the filters)."""
        rows: list[dict[str, Any]] = await query_audit(self._conn, **filters)
        return rows

    # --- usage ---------------------------------------------------------------------------

    async def record_usage(self, **usage: Any) -> None:
        """Append one model call's usage (see `tools.usage.record_usage`)."""
        async with self._lock:
            await record_usage(self._conn, **usage)

    async def usage_totals(self, user: str, thread_id: str) -> Totals:
        """Return the thread's and the user's spending so far."""
        return await totals(self._conn, user, thread_id)

    async def run_tokens(self, run_id: str) -> int:
        """Return the tokens one run used."""
        return await run_tokens(self._conn, run_id)

    # --- reads ---------------------------------------------------------------------------

    async def get(self, owner: str | None, task_id: str) -> dict[str, Any] | None:
        """Return one task of `owner` (any owner when None), or None."""
        return await _fetch_task(self._conn, owner, task_id)

    async def owned(self, scope: str | None, task_id: str) -> tuple[dict[str, Any], str] | None:
        """Return one task within `scope` (any owner when None) and whose it is, or None."""
        task = await _fetch_task(self._conn, scope, task_id)
        if task is None:
            return None
        return task, await task_owner(self._conn, task["id"])

    async def owners(self, task_ids: list[str]) -> dict[str, str]:
        """Return the owner of each of `task_ids` that exists."""
        if not task_ids:
            return {}
        marks = ", ".join("?" * len(task_ids))
        rows = await fetch_all(
            self._conn, f"SELECT id, owner FROM tasks WHERE id IN ({marks})", task_ids
        )
        return {str(task_id): str(owner) for task_id, owner in rows}

    async def find(
        self,
        owner: str | None,
        *,
        status: str | None = None,
        priority: str | None = None,
        tag: str | None = None,
        due_before: date | None = None,
        due_after: date | None = None,
        overdue_on: date | None = None,
        text: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Return `owner`'s tasks (everyone's when None) matching every filter, soonest first."""
        condition, params = _filters(
            owner, status, priority, tag, due_before, due_after, overdue_on, text
        )
        sql = (
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE {condition}"
            " ORDER BY due_date IS NULL, due_date, seq LIMIT ?"
        )
        return [_task(row) for row in await fetch_all(self._conn, sql, (*params, limit))]

    async def count_matching(
        self,
        owner: str | None,
        *,
        status: str | None = None,
        priority: str | None = None,
        tag: str | None = None,
        due_before: date | None = None,
        due_after: date | None = None,
        overdue_on: date | None = None,
        text: str | None = None,
    ) -> int:
        """Return how many tasks `find` would return with no limit."""
        condition, params = _filters(
            owner, status, priority, tag, due_before, due_after, overdue_on, text
        )
        row = await fetch_one(self._conn, f"SELECT COUNT(*) FROM tasks WHERE {condition}", params)
        return int(row[0]) if row else 0

    async def summary(self, owner: str, today: date) -> dict[str, Any]:
        """Return counts by status and priority, overdue tasks and tasks due this week."""
        tasks = await self.find(owner, limit=100_000)
        open_tasks = [t for t in tasks if t["status"] != "completed"]
        week_end = today + timedelta(days=6 - today.weekday())
        overdue = [t for t in open_tasks if t["due_date"] and t["due_date"] < today.isoformat()]
        this_week = [
            t
            for t in open_tasks
            if t["due_date"] and today.isoformat() <= t["due_date"] <= week_end.isoformat()
        ]
        return {
            "ok": True,
            "total": len(tasks),
            "by_status": {s: sum(t["status"] == s for t in tasks) for s in _STATUSES},
            "by_priority": {p: sum(t["priority"] == p for t in tasks) for p in _PRIORITIES},
            "overdue": len(overdue),
            "overdue_tasks": overdue[:20],
            "due_this_week": len(this_week),
            "due_this_week_tasks": this_week[:20],
        }

    async def count(self) -> int:
        """Return the number of tasks of all owners."""
        row = await fetch_one(self._conn, "SELECT COUNT(*) FROM tasks")
        return int(row[0]) if row else 0

    # --- message archive -----------------------------------------------------------------

    async def archive_messages(self, thread_id: str, messages: list[tuple[str, str]]) -> None:
        """Append (message_id, json) pairs to `thread_id`'s archive; repeats are ignored."""
        async with self._lock:
            row = await fetch_one(
                self._conn,
                "SELECT COALESCE(MAX(seq), 0) FROM message_archive WHERE thread_id = ?",
                (thread_id,),
            )
            start = int(row[0]) if row else 0
            await self._conn.executemany(
                "INSERT OR IGNORE INTO message_archive (thread_id, message_id, seq, message)"
                " VALUES (?, ?, ?, ?)",
                [(thread_id, mid, start + i + 1, body) for i, (mid, body) in enumerate(messages)],
            )

    async def delete_archive(self, thread_id: str) -> None:
        """Forget a thread's archived messages."""
        async with self._lock:
            await self._conn.execute(
                "DELETE FROM message_archive WHERE thread_id = ?", (thread_id,)
            )

    async def archived_messages(self, thread_id: str) -> list[str]:
        """Return the archived message JSON documents of `thread_id`, oldest first."""
        return [
            row[0]
            for row in await fetch_all(
                self._conn,
                "SELECT message FROM message_archive WHERE thread_id = ? ORDER BY seq",
                (thread_id,),
            )
        ]


_STATUSES = ("pending", "in_progress", "completed")
_PRIORITIES = ("low", "normal", "high", "urgent")


def _filters(
    owner: str | None,
    status: str | None,
    priority: str | None,
    tag: str | None,
    due_before: date | None,
    due_after: date | None,
    overdue_on: date | None,
    text: str | None,
) -> tuple[str, list[Any]]:
    """Return the WHERE condition and its parameters for the task filters."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if owner is not None:
        where.append("owner = ?")
        params.append(owner)
    if status:
        where.append("status = ?")
        params.append(status)
    if priority:
        where.append("priority = ?")
        params.append(priority)
    if tag is not None and tag.strip().lstrip("#"):
        where.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE lower(value) = lower(?))")
        params.append(tag.strip().lstrip("#"))
    if due_before:
        where.append("due_date IS NOT NULL AND due_date <= ?")
        params.append(due_before.isoformat())
    if due_after:
        where.append("due_date IS NOT NULL AND due_date >= ?")
        params.append(due_after.isoformat())
    if overdue_on:
        where.append("status != 'completed' AND due_date IS NOT NULL AND due_date < ?")
        params.append(overdue_on.isoformat())
    words = (text or "").split()
    if len(words) > MAX_TEXT_WORDS:
        # One LIKE pair per word: thousands would overflow SQLite's expression limits.
        raise ToolError(f"text has {len(words)} words; the limit is {MAX_TEXT_WORDS}.")
    for word in words:
        where.append("(title LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\')")
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [pattern, pattern]
    return " AND ".join(where), params


async def _fetch_task(
    conn: aiosqlite.Connection, owner: str | None, task_id: str
) -> dict[str, Any] | None:
    sql = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
    params: tuple[str, ...] = (task_id.upper(),)
    if owner is not None:
        sql += " AND owner = ?"
        params += (owner,)
    row = await fetch_one(conn, sql, params)
    return None if row is None else _task(row)


def completed(audit: AuditRecord, result: dict[str, Any], seconds: float) -> AuditRecord:
    """Return the audit record filled in with a tool's outcome."""
    audit.result_summary = summarize(result)
    audit.success = bool(result.get("ok"))
    audit.error = "" if audit.success else str(result.get("error", ""))[:500]
    audit.latency_ms = round(seconds * 1000, 2)
    return audit


async def insert_task(
    conn: aiosqlite.Connection, owner: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """Insert a task inside the caller's transaction and return it."""
    stamp = now_iso()
    cur = await conn.execute(
        "INSERT INTO tasks (id, owner, title, description, priority, status, due_date, tags,"
        " created_at, updated_at) VALUES ('pending-id', ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (
            owner,
            fields["title"],
            fields["description"],
            fields["priority"],
            fields["due_date"],
            json.dumps(fields["tags"]),
            stamp,
            stamp,
        ),
    )
    seq = cur.lastrowid
    task_id = f"TASK-{seq:04d}"
    await conn.execute("UPDATE tasks SET id = ? WHERE seq = ?", (task_id, seq))
    task = await _fetch_task(conn, owner, task_id)
    assert task is not None
    return task


async def task_owner(conn: aiosqlite.Connection, task_id: str) -> str:
    """Return the owner of an existing task (inside the caller's transaction)."""
    row = await fetch_one(conn, "SELECT owner FROM tasks WHERE id = ?", (task_id.upper(),))
    if row is None:
        raise ToolError(f"Task {task_id.upper()} not found.")
    return str(row[0])


async def require_task(
    conn: aiosqlite.Connection, owner: str | None, task_id: str
) -> dict[str, Any]:
    """Return the task or raise ToolError naming the unknown id."""
    task = await _fetch_task(conn, owner, task_id)
    if task is None:
        raise ToolError(f"Task {task_id.upper()} not found.")
    return task


async def update_fields(
    conn: aiosqlite.Connection, owner: str | None, task_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply `changes` to a task inside the caller's transaction and return the new task."""
    current = await require_task(conn, owner, task_id)
    values = dict(changes)
    if "tags" in values:
        values["tags"] = json.dumps(values["tags"])
    if "status" in values:
        completed = values["status"] == "completed"
        if completed and current["status"] != "completed":
            values["completed_at"] = now_iso()
        elif not completed:
            values["completed_at"] = None
    values["updated_at"] = now_iso()
    assignments = ", ".join(f"{column} = ?" for column in values)
    await conn.execute(
        f"UPDATE tasks SET {assignments} WHERE id = ?", (*values.values(), current["id"])
    )
    return await require_task(conn, owner, current["id"])


async def delete_row(conn: aiosqlite.Connection, owner: str | None, task_id: str) -> dict[str, Any]:
    """Delete a task inside the caller's transaction and return it whole, as it was."""
    task = await require_task(conn, owner, task_id)
    await conn.execute("DELETE FROM tasks WHERE id = ?", (task["id"],))
    return task
