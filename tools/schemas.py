"""Argument models for the task tools: the contract the model sees and the guard enforces."""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.text import check_plain_text

Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["pending", "in_progress", "completed"]

PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
STATUSES: tuple[Status, ...] = ("pending", "in_progress", "completed")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        # Task text is shown to other users and on terminals: no control or bidi characters.
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                check_plain_text(text)
        return value


class CreateTaskArgs(_Args):
    """Create a new task for the current user."""

    title: str = Field(min_length=1, max_length=200, description="Short title of the task.")
    description: str = Field(default="", max_length=4000, description="Optional longer notes.")
    priority: Priority = Field(default="normal", description="low, normal, high or urgent.")
    due_date: str | None = Field(
        default=None,
        description="Due date as YYYY-MM-DD (natural phrases like 'tomorrow' are accepted).",
    )
    tags: list[str] = Field(default_factory=list, max_length=20, description="Free-form labels.")


class ListTasksArgs(_Args):
    """List the current user's tasks, optionally filtered."""

    status: Status | None = Field(default=None, description="Only tasks with this status.")
    priority: Priority | None = Field(default=None, description="Only tasks with this priority.")
    due_before: str | None = Field(default=None, description="Due on or before this date.")
    due_after: str | None = Field(default=None, description="Due on or after this date.")
    overdue: bool = Field(default=False, description="Only open tasks whose due date has passed.")
    text: str | None = Field(default=None, description="Words that must appear in title/notes.")
    limit: int = Field(default=50, ge=1, le=200, description="Maximum number of tasks returned.")
    owner: str | None = Field(
        default=None, description="Admins only: list this user's tasks, or '*' for everyone's."
    )


class TaskIdArgs(_Args):
    """Identify one task by its id."""

    task_id: str = Field(
        description="Task id such as TASK-0003.", pattern=r"^[Tt][Aa][Ss][Kk]-\d{1,9}$"
    )


class GetTaskArgs(TaskIdArgs):
    """Show one task in full."""


class UpdateTaskArgs(TaskIdArgs):
    """Change fields of an existing task; omitted fields stay as they are."""

    title: str | None = Field(default=None, min_length=1, max_length=200, description="New title.")
    description: str | None = Field(default=None, max_length=4000, description="New notes.")
    priority: Priority | None = Field(default=None, description="New priority.")
    status: Status | None = Field(default=None, description="New status.")
    due_date: str | None = Field(default=None, description="New due date (YYYY-MM-DD).")
    tags: list[str] | None = Field(default=None, max_length=20, description="Replace the tags.")


class CompleteTaskArgs(TaskIdArgs):
    """Mark a task as completed."""


class DeleteTaskArgs(TaskIdArgs):
    """Delete a task permanently (asks the user for approval first)."""


class TaskSummaryArgs(_Args):
    """Counts by status and priority, overdue tasks and tasks due this week."""


TOOL_ARGS: dict[str, type[_Args]] = {
    "create_task": CreateTaskArgs,
    "list_tasks": ListTasksArgs,
    "get_task": GetTaskArgs,
    "update_task": UpdateTaskArgs,
    "complete_task": CompleteTaskArgs,
    "delete_task": DeleteTaskArgs,
    "task_summary": TaskSummaryArgs,
}
"""Every tool the agent has, by name, with its argument model (docstring = description)."""

MUTATING_TOOLS = frozenset({"create_task", "update_task", "complete_task", "delete_task"})
DESTRUCTIVE_TOOLS = frozenset({"delete_task"})


def call_signature(name: str, args: dict[str, Any]) -> str:
    """Return a stable key for a call, equal for identical name and arguments."""
    return name + json.dumps(args, sort_keys=True, default=str)


@cache
def tool_definition(name: str) -> dict[str, Any]:
    """Return the OpenAI-style function definition the model is offered for `name`."""
    model = TOOL_ARGS[name]
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": (model.__doc__ or name).strip(),
            "parameters": schema,
        },
    }
