"""Task routes without the model: the same tool path, authorization and audit as the agent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from graph.context import Context
from server.api.deps import context_of, runner_of
from server.api.schemas import ErrorResponse
from server.runs.runner import AgentRunner, TurnError
from server.runs.task_calls import TaskCallError, call_task_tool
from tools.schemas import CreateTaskArgs, ListTasksArgs, Priority, Status

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
    total: int = Field(description="How many tasks match in all; a page holds up to `limit`.")
    more: str | None = Field(default=None, description="Set when more tasks match than shown.")
    tasks: list[Task]


class DeletedTask(BaseModel):
    """What a deletion removed."""

    id: str
    title: str


class TaskDeleted(BaseModel):
    """The answer to a deletion."""

    deleted: DeletedTask


async def _run(runner: AgentRunner, context: Context, name: str, **args: Any) -> dict[str, Any]:
    try:
        return await call_task_tool(runner.services.tasks, context, name, args, via="tasks_api")
    except TaskCallError as exc:
        raise TurnError(exc.status, exc.message) from None


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
