"""What a user message can ask for: the intent kinds the parsers produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TextKind = Literal[
    "help",
    "greeting",
    "thanks",
    "goodbye",
    "acknowledge",
    "decline",
    "howto",
    "explain",
    "advice",
    "capability",
    "bulk",
    "clarify_title",
    "clarify_task",
    "clarify_change",
    "clarify_mixed",
    "clarify_dates",
    "too_many",
    "suggest_create",
    "unknown",
]


@dataclass(frozen=True)
class TaskRef:
    """How the user pointed at a task: an explicit id, some title words, or "it"."""

    task_id: str | None = None
    words: str | None = None
    pronoun: bool = False
    position: int | None = None
    """1-based place in the list just shown ("the second one")."""


@dataclass(frozen=True)
class ToolIntent:
    """A request that maps onto one tool call once `target` (if any) is resolved to an id."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    target: TaskRef | None = None


@dataclass(frozen=True)
class TextIntent:
    """A message answered in words only; `topic` says what it was about (a tool, a term)."""

    kind: TextKind
    topic: str = ""


@dataclass(frozen=True)
class BatchIntent:
    """Several tool requests in one message ("mark 2 and 3 done", "add milk, eggs and bread").

    Parts name their task by id, by title words (looked up together first), or need none.
    """

    intents: tuple[ToolIntent, ...]


@dataclass(frozen=True)
class UndoIntent:
    """Undo the last change made in this conversation ("undo that")."""


Intent = ToolIntent | TextIntent | BatchIntent | UndoIntent

MAX_BATCH = 10
"""Most tasks one message may create or change; more gets an honest answer instead."""

ADD_TAGS = "add_tags"
REMOVE_TAGS = "remove_tags"
"""Keys of an update that adds or removes tags: the task's current tags must be read first."""
