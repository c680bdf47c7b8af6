"""The task tools: validated arguments in, a JSON-able result for the model out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import aiosqlite
from pydantic import BaseModel

from tools.dates import parse_date
from tools.schemas import (
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
    store: TaskStore, args: CreateTaskArgs, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Create a task; a replay of the same call returns the task created the first time."""
    due = _due(args.due_date, today, "due_date")
    fields = {
        "title": args.title,
        "description": args.description,
        "priority": args.priority,
        "due_date": due.isoformat() if due else None,
        "tags": [t.strip().lstrip("#") for t in args.tags if t.strip()],
    }

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        return {"ok": True, "task": await insert_task(conn, owner, fields)}

    return await store.apply_once(call_id, owner, "create_task", args.model_dump(), mutate)


async def update_task(
    store: TaskStore, args: UpdateTaskArgs, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Change the given fields of a task."""
    changes = args.model_dump(exclude_unset=True, exclude_none=True, exclude={"task_id"})
    if "due_date" in changes:
        due = _due(changes["due_date"], today, "due_date")
        changes["due_date"] = due.isoformat() if due else None
    if not changes:
        raise ToolError("Nothing to change: give at least one field to update.")

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        task = await update_fields(conn, owner, args.task_id, changes)
        return {"ok": True, "task": task, "changed": sorted(changes)}

    return await store.apply_once(call_id, owner, "update_task", args.model_dump(), mutate)


async def complete_task(
    store: TaskStore, args: CompleteTaskArgs, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Mark a task completed."""

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        task = await update_fields(conn, owner, args.task_id, {"status": "completed"})
        return {"ok": True, "task": task}

    return await store.apply_once(call_id, owner, "complete_task", args.model_dump(), mutate)


async def delete_task(
    store: TaskStore, args: DeleteTaskArgs, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Delete a task."""

    async def mutate(conn: aiosqlite.Connection) -> ToolResult:
        return {"ok": True, "deleted": await delete_row(conn, owner, args.task_id)}

    return await store.apply_once(call_id, owner, "delete_task", args.model_dump(), mutate)


async def get_task(
    store: TaskStore, args: GetTaskArgs, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Return one task."""
    task = await store.get(owner, args.task_id)
    if task is None:
        raise ToolError(f"Task {args.task_id.upper()} not found.")
    return {"ok": True, "task": task}


async def list_tasks(
    store: TaskStore, args: ListTasksArgs, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Return the tasks matching the filters."""
    tasks = await store.find(
        owner,
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
    store: TaskStore, args: TaskSummaryArgs, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Return counts by status/priority, overdue and due-this-week tasks."""
    return await store.summary(owner, today)


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


async def run_tool(
    store: TaskStore, name: str, args: BaseModel, *, owner: str, call_id: str, today: date
) -> ToolResult:
    """Run tool `name` for `owner`; problems come back as `{"ok": false, "error": ...}`."""
    handler = HANDLERS[name]
    try:
        return await handler(store, args, owner=owner, call_id=call_id, today=today)
    except ToolError as exc:
        return {"ok": False, "error": str(exc)}


__all__ = ["HANDLERS", "run_tool"]
