"""Argument models for the task tools: the contract the model sees and the guard enforces."""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from tools.text import check_plain_text

Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["pending", "in_progress", "completed"]

PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
STATUSES: tuple[Status, ...] = ("pending", "in_progress", "completed")

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 4000
MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_TEXT_CHARS = 200
MAX_TEXT_WORDS = 20

MAX_DATE_CHARS = 100

Tag = Annotated[str, Field(max_length=MAX_TAG_CHARS)]


def _few_words(text: str | None) -> str | None:
    if text is not None and len(text.split()) > MAX_TEXT_WORDS:
        raise ValueError(f"text has {len(text.split())} words; the limit is {MAX_TEXT_WORDS}.")
    return text


SearchText = Annotated[str | None, AfterValidator(_few_words)]


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

    title: str = Field(
        min_length=1, max_length=MAX_TITLE_CHARS, description="Short title of the task."
    )
    description: str = Field(
        default="", max_length=MAX_DESCRIPTION_CHARS, description="Optional longer notes."
    )
    priority: Priority = Field(default="normal", description="low, normal, high or urgent.")
    due_date: str | None = Field(
        default=None,
        max_length=MAX_DATE_CHARS,
        description="Due date as YYYY-MM-DD (natural phrases like 'tomorrow' are accepted).",
    )
    tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_TAGS, description="Free-form labels."
    )


class ListTasksArgs(_Args):
    """List the current user's tasks, optionally filtered."""

    status: Status | None = Field(default=None, description="Only tasks with this status.")
    priority: Priority | None = Field(default=None, description="Only tasks with this priority.")
    due_before: str | None = Field(
        default=None, max_length=MAX_DATE_CHARS, description="Due on or before this date."
    )
    due_after: str | None = Field(
        default=None, max_length=MAX_DATE_CHARS, description="Due on or after this date."
    )
    overdue: bool = Field(default=False, description="Only open tasks whose due date has passed.")
    tag: str | None = Field(default=None, max_length=MAX_TAG_CHARS, description="Only this tag.")
    text: SearchText = Field(
        default=None,
        max_length=MAX_TEXT_CHARS,
        description="Words that must appear in title/notes (up to 20).",
    )
    limit: int = Field(default=50, ge=1, le=200, description="Maximum number of tasks returned.")
    owner: str | None = Field(
        default=None,
        max_length=200,
        description="Admins only: list this user's tasks, or '*' for everyone's.",
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

    title: str | None = Field(
        default=None, min_length=1, max_length=MAX_TITLE_CHARS, description="New title."
    )
    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION_CHARS, description="New notes."
    )
    priority: Priority | None = Field(default=None, description="New priority.")
    status: Status | None = Field(default=None, description="New status.")
    due_date: str | None = Field(
        default=None, max_length=MAX_DATE_CHARS, description="New due date (YYYY-MM-DD)."
    )
    tags: list[Tag] | None = Field(
        default=None, max_length=MAX_TAGS, description="Replace the tags."
    )


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
