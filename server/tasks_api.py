"""Task routes without the model: the same tool path, authorization and audit as the agent."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, ValidationError

from graph.context import Context
from server.deps import context_of, runner_of
from server.runner import AgentRunner, TurnError
from server.schemas import ErrorResponse
from tools.audit import AuditRecord
from tools.authorization import argument_problem, may_call, task_scope
from tools.schemas import TOOL_ARGS, CreateTaskArgs, ListTasksArgs, Priority, Status
from tools.store import TaskStore
from tools.tasks import Call, run_tool

router = APIRouter(tags=["tasks"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    429: {"model": ErrorResponse},
}

TaskId = Annotated[str, Path(description="Task id such as TASK-0003.", max_length=20)]


class Task(BaseModel):
    """One task as stored."""

    id: str = Field(examples=["TASK-0003"])
    title: str
    description: str
    priority: Priority
    status: Status
    due_date: str | None = Field(description="YYYY-MM-DD, or null.")
    tags: list[str]
    created_at: str
    updated_at: str
    completed_at: str | None


class TaskList(BaseModel):
    """The tasks matching a query, soonest due first."""

    count: int
    tasks: list[Task]


class DeletedTask(BaseModel):
    """What a deletion removed."""

    id: str
    title: str


class TaskDeleted(BaseModel):
    """The answer to a deletion."""

    deleted: DeletedTask


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors()
    )


async def run_task_tool(
    store: TaskStore, context: Context, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Run task tool `name` for the caller as the agent would, or raise TurnError.

    The role is checked against the same matrix as the agent's tool guard (403, audited as a
    denial), arguments against the tool's model (422), and the call runs through `run_tool`,
    so writes are applied once and audited in their transaction. An id outside the caller's
    scope is a 404.
    """
    call_id = f"direct-{uuid.uuid4()}"
    audit = AuditRecord(
        "tool",
        user=context.user_id,
        role=context.role,
        tool=name,
        tool_call_id=call_id,
        arguments=arguments,
        detail={"via": "tasks_api", "request_id": context.request_id},
    )
    reason = None
    if not may_call(context.role, name):
        reason = f"Your role ({context.role}) is not allowed to call {name}."
    else:
        reason = argument_problem(context.role, name, arguments)
    if reason is not None:
        audit.kind, audit.success, audit.error = "denied", False, reason
        await store.audit(audit)
        raise TurnError(403, reason)
    try:
        args = TOOL_ARGS[name].model_validate(arguments)
    except ValidationError as exc:
        raise TurnError(422, f"Invalid arguments for {name}: {_problems(exc)}.") from None
    scope = task_scope(context.role, context.user_id)
    result = await run_tool(
        store,
        name,
        args,
        owner=context.user_id,
        scope=scope,
        call=Call(call_id, date.today(), audit),
    )
    if not result.get("ok"):
        error = str(result.get("error", f"{name} failed."))
        task_id = arguments.get("task_id")
        if isinstance(task_id, str) and await store.get(scope, task_id) is None:
            raise TurnError(404, f"Task {task_id.upper()} not found.")
        raise TurnError(422, error)
    return result


async def _run(runner: AgentRunner, context: Context, name: str, **args: Any) -> dict[str, Any]:
    return await run_task_tool(runner.services.tasks, context, name, args)


@router.get("/tasks", response_model=TaskList, responses=ERRORS)
async def list_tasks(
    query: Annotated[ListTasksArgs, Query()],
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """List your tasks, filtered by status, priority, due dates or words in the title.

    Example: `GET /tasks?status=pending&priority=high&text=report`.
    """
    return await _run(runner, context, "list_tasks", **query.model_dump(exclude_defaults=True))


@router.post("/tasks", status_code=201, response_model=Task, responses=ERRORS)
async def create_task(
    body: CreateTaskArgs,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """Create a task (needs the write or admin role); `due_date` accepts 'tomorrow' too."""
    result = await _run(runner, context, "create_task", **body.model_dump(exclude_unset=True))
    task: dict[str, Any] = result["task"]
    return task


@router.get("/tasks/{task_id}", response_model=Task, responses=ERRORS)
async def get_task(
    task_id: TaskId,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """Return one of your tasks."""
    task: dict[str, Any] = (await _run(runner, context, "get_task", task_id=task_id))["task"]
    return task


@router.post("/tasks/{task_id}/complete", response_model=Task, responses=ERRORS)
async def complete_task(
    task_id: TaskId,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """Mark one of your tasks completed."""
    task: dict[str, Any] = (await _run(runner, context, "complete_task", task_id=task_id))["task"]
    return task


@router.delete("/tasks/{task_id}", response_model=TaskDeleted, responses=ERRORS)
async def delete_task(
    task_id: TaskId,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """Delete one of your tasks. Calling this is the approval: it does not ask again."""
    return await _run(runner, context, "delete_task", task_id=task_id)
