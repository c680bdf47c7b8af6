"""Argument models for the task tools: the contract the model sees and the guard enforces."""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator

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


DUE_WORDS = "User's words ('next Friday', 'December 15') or YYYY-MM-DD; don't compute"
TASK_REF = "Id (from results/user) or title words"


class CreateTaskArgs(_Args):
    """Create a task."""

    title: str = Field(
        min_length=1,
        max_length=MAX_TITLE_CHARS,
    )
    description: str = Field(
        default="",
        max_length=MAX_DESCRIPTION_CHARS,
    )
    priority: Priority = Field(default="normal")
    due_date: str | None = Field(default=None, max_length=MAX_DATE_CHARS, description=DUE_WORDS)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class ListTasksArgs(_Args):
    """List tasks, filtered."""

    status: Status | None = None
    priority: Priority | None = None
    tag: str | None = Field(default=None, max_length=MAX_TAG_CHARS)
    # Dates here are read like due_date (the prompt says so once for all of them).
    due_before: str | None = Field(default=None, max_length=MAX_DATE_CHARS)
    due_after: str | None = Field(default=None, max_length=MAX_DATE_CHARS)
    overdue: bool = False
    text: SearchText = Field(
        default=None, max_length=MAX_TEXT_CHARS, description="Words in title/notes"
    )
    limit: int = Field(default=20, ge=1, le=200)
    owner: str | None = Field(default=None, max_length=200, description="Admins: user or '*'")


class TaskRefArgs(_Args):
    """Name one task: by id where one is known, else by words from its title."""

    # `task_id` is what callers and the offline engine sent before references existed.
    task: str = Field(
        min_length=1,
        max_length=MAX_TITLE_CHARS,
        validation_alias=AliasChoices("task", "task_id"),
        description=TASK_REF,
    )


class GetTaskArgs(TaskRefArgs):
    """Show one task in full."""


class UpdateTaskArgs(TaskRefArgs):
    """Change fields of a task."""

    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TITLE_CHARS,
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    priority: Priority | None = None
    status: Status | None = None
    due_date: str | None = Field(default=None, max_length=MAX_DATE_CHARS, description=DUE_WORDS)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS, description="Replaces tags")


class CompleteTaskArgs(TaskRefArgs):
    """Mark a task completed."""


class DeleteTaskArgs(TaskRefArgs):
    """Delete a task (user approves)."""


class TaskSummaryArgs(_Args):
    """Counts, overdue, due this week."""


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


_DROPPED = frozenset(
    {"title", "default", "maxLength", "minLength", "maxItems", "maximum", "minimum"}
)


def _compact(spec: dict[str, Any]) -> dict[str, Any]:
    """Return one field's schema without what a model does not need to call the tool right.

    Pydantic titles repeat the field names, a `null` alternative and `default: null` say only
    that the field may be left out (it is then not `required`), an enum's values say its type,
    and limits are checked by the guard, which tells the model when one is exceeded.
    Enums are short, so they stay inline rather than in `$defs`.
    """
    options = [o for o in spec.get("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        spec = {**options[0], **{k: v for k, v in spec.items() if k != "anyOf"}}
    compact = {k: v for k, v in spec.items() if k not in _DROPPED}
    if "enum" in compact:
        compact.pop("type", None)
    if isinstance(compact.get("items"), dict):
        compact["items"] = _compact(compact["items"])
    return compact


@cache
def tool_definition(name: str) -> dict[str, Any]:
    """Return the compact OpenAI-style function definition the model is offered for `name`."""
    model = TOOL_ARGS[name]
    schema = model.model_json_schema()
    properties = {field: _compact(spec) for field, spec in schema.get("properties", {}).items()}
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        parameters["required"] = schema["required"]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": (model.__doc__ or name).strip(),
            "parameters": parameters,
        },
    }
