"""The task tools: validated arguments in, a JSON-able result for the model out."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import aiosqlite
from pydantic import BaseModel

from tools.audit import AuditRecord
from tools.dates import parse_date
from tools.schemas import (
    MUTATING_TOOLS,
    CompleteTaskArgs,
    CreateTaskArgs,
    DeleteTaskArgs,
    GetTaskArgs,
    ListTasksArgs,
    TaskSummaryArgs,
    UpdateTaskArgs,
)
from tools.store import (
    TaskStore,
    ToolError,
    completed,
    delete_row,
    insert_task,
    update_fields,
)

ToolResult = dict[str, Any]


def _due(value: str | None, today: date, field: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_date(value, today)
    except ValueError as exc:
        raise ToolError(f"Invalid {field} {value!r}: {exc}") from None


async def create_task(
    store: TaskStore, args: CreateTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Create a task; a replay of the same call returns the task created the first time."""
    due = _due(args.due_date, call.today, "due_date")
    fields = {
        "title": args.title,
        "description": args.description,
        "priority": args.priority,
        "due_date": due.isoformat() if due else None,
        "tags": [t.strip().lstrip("#") for t in args.tags if t.strip()],
    }

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        return {"ok": True, "task": await insert_task(conn, owner, fields)}

    return await call.apply(store, owner, args, mutate)


async def update_task(
    store: TaskStore, args: UpdateTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Change the given fields of a task."""
    changes = args.model_dump(exclude_unset=True, exclude_none=True, exclude={"task_id"})
    if "due_date" in changes:
        due = _due(changes["due_date"], call.today, "due_date")
        changes["due_date"] = due.isoformat() if due else None
    if not changes:
        raise ToolError("Nothing to change: give at least one field to update.")

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        task = await update_fields(conn, scope, args.task_id, changes)
        return {"ok": True, "task": task, "changed": sorted(changes)}

    return await call.apply(store, owner, args, mutate)


async def complete_task(
    store: TaskStore, args: CompleteTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Mark a task completed."""

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        task = await update_fields(conn, scope, args.task_id, {"status": "completed"})
        return {"ok": True, "task": task}

    return await call.apply(store, owner, args, mutate)


async def delete_task(
    store: TaskStore, args: DeleteTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Delete a task."""

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        return {"ok": True, "deleted": await delete_row(conn, scope, args.task_id)}

    return await call.apply(store, owner, args, mutate)


async def get_task(
    store: TaskStore, args: GetTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Return one task."""
    task = await store.get(scope, args.task_id)
    if task is None:
        raise ToolError(f"Task {args.task_id.upper()} not found.")
    return {"ok": True, "task": task}


async def list_tasks(
    store: TaskStore, args: ListTasksArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Return the tasks matching the filters (admins may name another owner, or '*')."""
    today = call.today
    listed: str | None = owner
    if scope is None and args.owner is not None:
        listed = None if args.owner == "*" else args.owner
    tasks = await store.find(
        listed,
        status=args.status,
        priority=args.priority,
        due_before=_due(args.due_before, today, "due_before"),
        due_after=_due(args.due_after, today, "due_after"),
        overdue_on=today if args.overdue else None,
        text=args.text,
        limit=args.limit,
    )
    return {"ok": True, "count": len(tasks), "tasks": tasks}


async def task_summary(
    store: TaskStore, args: TaskSummaryArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Return counts by status/priority, overdue and due-this-week tasks."""
    return await store.summary(owner, call.today)


Handler = Callable[..., Awaitable[ToolResult]]

HANDLERS: dict[str, Handler] = {
    "create_task": create_task,
    "list_tasks": list_tasks,
    "get_task": get_task,
    "update_task": update_task,
    "complete_task": complete_task,
    "delete_task": delete_task,
    "task_summary": task_summary,
}


@dataclass
class Call:
    """One tool call being executed: its idempotency key, date, and audit record."""

    call_id: str
    today: date
    audit: AuditRecord | None = None
    tool: str = ""

    async def apply(
        self,
        store: TaskStore,
        owner: str,
        args: BaseModel,
        mutation: Callable[[aiosqlite.Connection], Awaitable[ToolResult]],
    ) -> ToolResult:
        """Apply a mutation at most once, audited in the same transaction."""
        return await store.apply_once(
            self.call_id, owner, self.tool, args.model_dump(), mutation, self.audit
        )


async def run_tool(
    store: TaskStore,
    name: str,
    args: BaseModel,
    *,
    owner: str,
    scope: str | None,
    call: Call,
) -> ToolResult:
    """Run tool `name` for `owner` on the tasks of `scope` (None: any owner, admins only).

    Problems come back as `{"ok": false, "error": ...}`; reads are audited here, writes
    inside their transaction.
    """
    started = time.perf_counter()
    try:
        result = await HANDLERS[name](
            store, args, owner=owner, scope=scope, call=replace(call, tool=name)
        )
    except ToolError as exc:
        result = {"ok": False, "error": str(exc)}
    if name not in MUTATING_TOOLS and call.audit is not None:
        await store.audit(completed(call.audit, result, time.perf_counter() - started))
    return result


__all__ = ["HANDLERS", "Call", "run_tool"]
