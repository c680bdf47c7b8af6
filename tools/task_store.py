"""The tasks table: rows per owner, the filters that find them, the changes that edit them.

Functions take the connection to use: reads outside a change go through the façade's
read connection (`tools.store.TaskStore`), reads inside a change through the writer's
transaction, so a change checks the very task it edits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from tools.database import Connection
from tools.errors import ToolError
from tools.migrations import Migration
from tools.postgres import pg_schema
from tools.schemas import MAX_TEXT_WORDS
from tools.sqlite import fetch_all, fetch_one, now_iso

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
"""

MIGRATIONS: list[Migration] = [SCHEMA]
PG_MIGRATIONS: list[Migration] = [pg_schema(SCHEMA)]
"""The tasks store's schema versions, oldest first (see `tools.migrations.migrate`)."""

TASK_COLUMNS = (
    "id, title, description, priority, status, due_date, tags, created_at, updated_at, completed_at"
)
_KEYS = [k.strip() for k in TASK_COLUMNS.split(",")]
STATUSES = ("pending", "in_progress", "completed")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class TaskFilter:
    """What a listing asks for; every given field must match (None: any)."""

    status: str | None = None
    priority: str | None = None
    tag: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    overdue_on: date | None = None
    text: str | None = None

    def where(self, owner: str | None) -> tuple[str, list[Any]]:
        """Return the WHERE condition and its parameters for `owner`'s tasks (all when None).

        Raises ToolError when `text` has more words than one query can search for.
        """
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if self.status:
            where.append("status = ?")
            params.append(self.status)
        if self.priority:
            where.append("priority = ?")
            params.append(self.priority)
        tag = (self.tag or "").strip().lstrip("#")
        if tag:
            where.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE lower(value) = lower(?))")
            params.append(tag)
        if self.due_before:
            where.append("due_date IS NOT NULL AND due_date <= ?")
            params.append(self.due_before.isoformat())
        if self.due_after:
            where.append("due_date IS NOT NULL AND due_date >= ?")
            params.append(self.due_after.isoformat())
        if self.overdue_on:
            where.append("status != 'completed' AND due_date IS NOT NULL AND due_date < ?")
            params.append(self.overdue_on.isoformat())
        words = (self.text or "").split()
        if len(words) > MAX_TEXT_WORDS:
            # One LIKE pair per word: thousands would overflow SQLite's expression limits.
            raise ToolError(f"text has {len(words)} words; the limit is {MAX_TEXT_WORDS}.")
        for word in words:
            where.append("(title LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\')")
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [pattern, pattern]
        return " AND ".join(where), params


def _task(row: Any) -> dict[str, Any]:
    task = dict(zip(_KEYS, row, strict=True))
    task["tags"] = json.loads(task["tags"])
    return task


async def find_tasks(
    conn: Connection, owner: str | None, filters: TaskFilter, limit: int
) -> list[dict[str, Any]]:
    """Return `owner`'s tasks (everyone's when None) matching `filters`, soonest due first."""
    condition, params = filters.where(owner)
    sql = (
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE {condition}"
        " ORDER BY due_date IS NULL, due_date, seq LIMIT ?"
    )
    return [_task(row) for row in await fetch_all(conn, sql, (*params, limit))]


async def count_tasks(
    conn: Connection, owner: str | None, filters: TaskFilter | None = None
) -> int:
    """Return how many tasks `find_tasks` would return with no limit."""
    condition, params = (filters or TaskFilter()).where(owner)
    row = await fetch_one(conn, f"SELECT COUNT(*) FROM tasks WHERE {condition}", params)
    return int(row[0]) if row else 0


async def fetch_task(conn: Connection, owner: str | None, task_id: str) -> dict[str, Any] | None:
    """Return one task of `owner` (any owner when None), or None."""
    sql = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
    params: tuple[str, ...] = (task_id.upper(),)
    if owner is not None:
        sql += " AND owner = ?"
        params += (owner,)
    row = await fetch_one(conn, sql, params)
    return None if row is None else _task(row)


async def owned_task(
    conn: Connection, scope: str | None, task_id: str
) -> tuple[dict[str, Any], str] | None:
    """Return one task within `scope` (any owner when None) and whose it is, in one read."""
    sql = f"SELECT {TASK_COLUMNS}, owner FROM tasks WHERE id = ?"
    params: tuple[str, ...] = (task_id.upper(),)
    if scope is not None:
        sql += " AND owner = ?"
        params += (scope,)
    row = await fetch_one(conn, sql, params)
    return None if row is None else (_task(row[:-1]), str(row[-1]))


async def owners_of(conn: Connection, task_ids: list[str]) -> dict[str, str]:
    """Return the owner of each of `task_ids` that exists."""
    if not task_ids:
        return {}
    rows = await fetch_all(
        conn,
        "SELECT id, owner FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(task_ids),),
    )
    return {str(task_id): str(owner) for task_id, owner in rows}


def summarize_tasks(tasks: list[dict[str, Any]], today: date) -> dict[str, Any]:
    """Return counts by status and priority, overdue tasks and tasks due this week."""
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
        "by_status": {s: sum(t["status"] == s for t in tasks) for s in STATUSES},
        "by_priority": {p: sum(t["priority"] == p for t in tasks) for p in PRIORITIES},
        "overdue": len(overdue),
        "overdue_tasks": overdue[:20],
        "due_this_week": len(this_week),
        "due_this_week_tasks": this_week[:20],
    }


async def insert_task(conn: Connection, owner: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Insert a task inside the caller's transaction and return it."""
    stamp = now_iso()
    inserted = await fetch_one(
        conn,
        "INSERT INTO tasks (id, owner, title, description, priority, status, due_date, tags,"
        " created_at, updated_at) VALUES ('pending-id', ?, ?, ?, ?, 'pending', ?, ?, ?, ?)"
        " RETURNING seq",
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
    seq = int(inserted[0])
    task_id = f"TASK-{seq:04d}"
    await conn.execute("UPDATE tasks SET id = ? WHERE seq = ?", (task_id, seq))
    return await require_task(conn, owner, task_id)


async def task_owner(conn: Connection, task_id: str) -> str:
    """Return the owner of an existing task (inside the caller's transaction)."""
    row = await fetch_one(conn, "SELECT owner FROM tasks WHERE id = ?", (task_id.upper(),))
    if row is None:
        raise ToolError(f"Task {task_id.upper()} not found.")
    return str(row[0])


async def require_task(conn: Connection, owner: str | None, task_id: str) -> dict[str, Any]:
    """Return the task or raise ToolError naming the unknown id."""
    task = await fetch_task(conn, owner, task_id)
    if task is None:
        raise ToolError(f"Task {task_id.upper()} not found.")
    return task


async def update_fields(
    conn: Connection, owner: str | None, task_id: str, changes: dict[str, Any]
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


async def delete_row(conn: Connection, owner: str | None, task_id: str) -> dict[str, Any]:
    """Delete a task inside the caller's transaction and return it whole, as it was."""
    task = await require_task(conn, owner, task_id)
    await conn.execute("DELETE FROM tasks WHERE id = ?", (task["id"],))
    return task
