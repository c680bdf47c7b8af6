"""The task tools: validated arguments in, a JSON-able result for the model out."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from pydantic import BaseModel

from tools.approval import UNTRUSTED_NOTICE, binding_problem, mark_untrusted, needs_approval
from tools.audit import AuditRecord, completed
from tools.database import Connection
from tools.dates import parse_date
from tools.errors import ToolError
from tools.references import resolve_for
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
from tools.store import TaskStore
from tools.task_store import (
    TaskFilter,
    delete_row,
    insert_task,
    require_task,
    task_owner,
    update_fields,
)

ToolResult = dict[str, Any]


async def _task_id(
    store: TaskStore, scope: str | None, actor: str, reference: str, tool: str
) -> str:
    """Return the id of the one task `reference` names, or raise ToolError with candidates."""
    resolution = await resolve_for(store, scope, actor, reference, tool)
    if resolution.task_id is None:
        raise ToolError(resolution.problem, {"candidates": resolution.candidates})
    return resolution.task_id


async def _check_target(
    conn: Connection, scope: str | None, task_id: str, actor: str, call: Call
) -> tuple[dict[str, Any], str]:
    """Refuse a model's change that needs an approval it lacks; return the task and its owner.

    Runs inside the change's transaction, so the task checked is the task changed.
    """
    task = await require_task(conn, scope, task_id)
    owner = await task_owner(conn, task["id"])
    if call.for_model and needs_approval(call.tool, actor, owner):
        problem = binding_problem(call.tool, call.approval, task, owner)
        if problem is not None:
            raise ToolError(problem)
    return task, owner


LISTED_FIELDS = ("id", "title", "status", "priority", "due_date", "tags")
LISTED_DESCRIPTION_CHARS = 80


def compact(task: dict[str, Any]) -> dict[str, Any]:
    """Return the short form of a task for lists: get_task shows the rest."""
    short = {name: task[name] for name in LISTED_FIELDS if name in task}
    notes = str(task.get("description") or "")
    if notes:
        cut = LISTED_DESCRIPTION_CHARS
        short["description"] = notes if len(notes) <= cut else notes[: cut - 1].rstrip() + "…"
    return short


def _whose(task: dict[str, Any], owner: str, actor: str) -> dict[str, Any]:
    mark_untrusted([task], {str(task["id"]): owner}, actor)
    return task


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

    async def mutate(conn: Connection) -> ToolResult:
        return {"ok": True, "task": await insert_task(conn, owner, fields)}

    return await call.apply(store, owner, args, mutate)


async def update_task(
    store: TaskStore, args: UpdateTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Change the given fields of a task; the result says what they were before."""
    changes = args.model_dump(exclude_unset=True, exclude_none=True, exclude={"task"})
    if "due_date" in changes:
        due = _due(changes["due_date"], call.today, "due_date")
        changes["due_date"] = due.isoformat() if due else None
    if not changes:
        raise ToolError("Nothing to change: give at least one field to update.")

    async def mutate(conn: Connection) -> ToolResult:
        task_id = await _task_id(store, scope, owner, args.task, call.tool)
        before, whose = await _check_target(conn, scope, task_id, owner, call)
        task = _whose(await update_fields(conn, scope, task_id, changes), whose, owner)
        previous = {name: before[name] for name in sorted(changes)}
        return {"ok": True, "task": task, "changed": sorted(changes), "previous": previous}

    return await call.apply(store, owner, args, mutate)


async def complete_task(
    store: TaskStore, args: CompleteTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Mark a task completed; the result says what its status was before."""

    async def mutate(conn: Connection) -> ToolResult:
        task_id = await _task_id(store, scope, owner, args.task, call.tool)
        before, whose = await _check_target(conn, scope, task_id, owner, call)
        task = await update_fields(conn, scope, task_id, {"status": "completed"})
        previous = {"status": before["status"], "completed_at": before["completed_at"]}
        return {"ok": True, "task": _whose(task, whose, owner), "previous": previous}

    return await call.apply(store, owner, args, mutate)


async def delete_task(
    store: TaskStore, args: DeleteTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Delete a task."""

    async def mutate(conn: Connection) -> ToolResult:
        task_id = await _task_id(store, scope, owner, args.task, call.tool)
        _, whose = await _check_target(conn, scope, task_id, owner, call)
        return {
            "ok": True,
            "deleted": _whose(await delete_row(conn, scope, task_id), whose, owner),
        }

    return await call.apply(store, owner, args, mutate)


async def get_task(
    store: TaskStore, args: GetTaskArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Return one task, in full."""
    task_id = await _task_id(store, scope, owner, args.task, call.tool)
    task = await store.get(scope, task_id)
    if task is None:
        raise ToolError(f"Task {task_id} not found.")
    return {"ok": True, "task": task}


async def list_tasks(
    store: TaskStore, args: ListTasksArgs, *, owner: str, scope: str | None, call: Call
) -> ToolResult:
    """Return the tasks matching the filters (admins may name another owner, or '*').

    A page holds at most `limit` tasks; `total` and `more` say how many others match.
    """
    today = call.today
    listed: str | None = owner
    if scope is None and args.owner is not None:
        listed = None if args.owner == "*" else args.owner
    filters = TaskFilter(
        status=args.status,
        priority=args.priority,
        tag=args.tag,
        due_before=_due(args.due_before, today, "due_before"),
        due_after=_due(args.due_after, today, "due_after"),
        overdue_on=today if args.overdue else None,
        text=args.text,
    )
    tasks = await store.find(listed, filters, limit=args.limit)
    full_page = len(tasks) == args.limit
    total = await store.count_matching(listed, filters) if full_page else len(tasks)
    result: ToolResult = {
        "ok": True,
        "count": len(tasks),
        "total": total,
        # A person (the /tasks routes, the CLI) gets whole tasks; a model's context is small.
        "tasks": [compact(task) for task in tasks] if call.for_model else tasks,
    }
    if total > len(tasks):
        result["more"] = f"{total - len(tasks)} more; narrow the filters or raise limit"
    return result


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
    """One tool call being executed: its ids, date, audit record and the approval it carries.

    `key` is the exactly-once key (see `tools.tool_results.call_key`; the call id when empty).
    `for_model` marks a call the model proposed: a change that needs the user's approval
    then runs only with `approval` (the task as shown to the user) and only on that task.
    A person's own calls (the /tasks routes, the CLI) are their own approval.
    """

    call_id: str
    today: date
    audit: AuditRecord | None = None
    tool: str = ""
    key: str = ""
    thread_id: str = ""
    for_model: bool = False
    approval: dict[str, Any] | None = None

    async def apply(
        self,
        store: TaskStore,
        owner: str,
        args: BaseModel,
        mutation: Callable[[Connection], Awaitable[ToolResult]],
    ) -> ToolResult:
        """Apply a mutation at most once, audited in the same transaction."""
        return await store.apply_once(
            self.key or self.call_id,
            owner,
            self.tool,
            args.model_dump(),
            mutation,
            self.audit,
            call_id=self.call_id,
            thread_id=self.thread_id,
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
        result = exc.result()
    if scope is None and name not in MUTATING_TOOLS:
        read = _tasks_in(result)
        mark_untrusted(read, await store.owners([str(t["id"]) for t in read]), owner)
    if any(t.get("untrusted") for t in _tasks_in(result)):
        result["notice"] = UNTRUSTED_NOTICE
    if name not in MUTATING_TOOLS and call.audit is not None:
        await store.audit(completed(call.audit, result, time.perf_counter() - started))
    return result


def _tasks_in(result: ToolResult) -> list[dict[str, Any]]:
    """The task objects a result carries (a list, one task, or what was deleted)."""
    found = list(result.get("tasks") or [])
    found += [result[key] for key in ("task", "deleted") if isinstance(result.get(key), dict)]
    return found


__all__ = ["HANDLERS", "Call", "run_tool"]
