"""Task references: what a tool call names as `task` (an id or title words) and which task it is.

Small models guess ids ("TASK-0001" for "the insurance task"), so a reference is resolved by
the tools against the caller's tasks: an id that exists is that task, title words must match
exactly one task, and otherwise the model is told the candidates instead of a task being
picked for it. `seen_ids` and `names_title` let the guard refuse an id that came from nowhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from tools.store import TaskStore

MAX_CANDIDATES = 5
MAX_SCANNED = 10_000
_ID = re.compile(r"^\s*(?:task[\s_-]*|#)?0*(\d{1,9})\s*$", re.IGNORECASE)
_IDS_IN_TEXT = re.compile(r"(?:\btask[\s_-]*|#)0*(\d{1,9})\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
# Words that say "a task" rather than which one: "the insurance task" names "insurance".
_FILLER = frozenset(
    "a an the my our your this that to of for on in at and or task tasks todo item one".split()
)


def as_task_id(reference: str) -> str | None:
    """Return the canonical id a reference spells ("TASK-0003", "task 3", "#3", "3"), or None."""
    match = _ID.match(reference)
    return f"TASK-{int(match.group(1)):04d}" if match else None


def ids_in(text: str) -> set[str]:
    """Return the canonical task ids written anywhere in `text`."""
    return {f"TASK-{int(number):04d}" for number in _IDS_IN_TEXT.findall(text)}


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("xes", "ches", "shes", "sses", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def key_words(text: str) -> list[str]:
    """Return the words of `text` that can pick out a task, lower-cased and singular."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _FILLER]


def _same(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _word_matches(wanted: str, title_words: Iterable[str]) -> bool:
    # A longer word may be cut short by the user ("dentist" for "dentistry"), never the reverse.
    return any(w == wanted or (len(wanted) >= 4 and w.startswith(wanted)) for w in title_words)


def names_title(title: str, text: str) -> bool:
    """Return whether `text` (what the user said) uses any word that picks out `title`."""
    said = set(key_words(text))
    return any(_word_matches(word, said) for word in key_words(title))


def matches(reference: str, title: str) -> bool:
    """Return whether every picking word of `reference` is in `title`."""
    wanted = key_words(reference)
    title_words = key_words(title)
    return bool(wanted) and all(_word_matches(w, title_words) for w in wanted)


@dataclass(frozen=True)
class Resolution:
    """Which task a reference names: `task_id`, or a `problem` with `candidates` to offer."""

    task_id: str | None
    problem: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0

    def error(self) -> dict[str, Any]:
        """Return the tool result telling the model why no task was acted on."""
        result: dict[str, Any] = {"ok": False, "error": self.problem}
        if self.candidates:
            result["candidates"] = self.candidates
        return result


def _candidate(task: dict[str, Any]) -> dict[str, Any]:
    return {k: task.get(k) for k in ("id", "title", "status", "due_date")}


def resolve(reference: str, tasks: Sequence[dict[str, Any]], tool: str) -> Resolution:
    """Return the one task of `tasks` that title words `reference` name, or why there is none.

    An exact title wins; otherwise every picking word must be in the title. Completing
    prefers the one open task when the others that match are already completed.
    """
    task_id = as_task_id(reference)
    written = ids_in(reference)
    if task_id is not None or len(written) == 1:
        # "TASK-0003 (Pay rent)" names its id too.
        return Resolution(task_id or written.pop(), matched=1)
    exact = [t for t in tasks if _same(str(t["title"])) == _same(reference)]
    found = exact or [t for t in tasks if matches(reference, str(t["title"]))]
    if tool == "complete_task" and len(found) > 1:
        still_open = [t for t in found if t["status"] != "completed"]
        found = still_open if len(still_open) == 1 else found
    if len(found) == 1:
        return Resolution(str(found[0]["id"]), matched=1)
    if found:
        return Resolution(
            None,
            f"{len(found)} tasks match {json.dumps(reference)}; ask the user which one they"
            " mean (or pass its id as `task`). Nothing was changed.",
            [_candidate(t) for t in found[: MAX_CANDIDATES * 2]],
            len(found),
        )
    open_tasks = [t for t in tasks if t["status"] != "completed"][:MAX_CANDIDATES]
    return Resolution(
        None,
        f"No task matches {json.dumps(reference)}. Nothing was changed. "
        + (
            "Some open tasks are listed as candidates; ask the user if none is meant."
            if open_tasks
            else "The user has no open tasks."
        ),
        [_candidate(t) for t in open_tasks],
    )


async def resolve_for(
    store: TaskStore, scope: str | None, actor: str, reference: str, tool: str
) -> Resolution:
    """Resolve `reference` against the tasks `actor` may act on (`scope`; None: anyone's).

    An admin's words are matched against their own tasks first, then everyone's.
    """
    if as_task_id(reference) is not None:
        return resolve(reference, [], tool)
    own = resolve(reference, await store.find(actor, limit=MAX_SCANNED), tool)
    if scope is not None or own.matched:
        return own
    return resolve(reference, await store.find(None, limit=MAX_SCANNED), tool)


_PRONOUN = re.compile(
    r"^\s*(?:it|that|this|(?:that|this|the)\s+(?:one|task)"
    r"|the\s+(?:last|latest|previous|same|new)\s+(?:one|task))\s*$",
    re.IGNORECASE,
)


def is_pronoun(reference: str) -> bool:
    """Whether a reference is "it", "that one", "the last task": a pointer, not a name."""
    return _PRONOUN.match(reference) is not None


def recent_task_id(messages: Sequence[BaseMessage]) -> str | None:
    """Return the task the conversation last pointed at, or None when that is not one task.

    The newest user message or successful tool result that names ids decides: one id is
    "it"; a list of several is not.
    """
    for message in reversed(messages):
        if isinstance(message, HumanMessage) or (
            isinstance(message, ToolMessage) and message.status != "error"
        ):
            ids = ids_in(message.text)
            if ids:
                return ids.pop() if len(ids) == 1 else None
    return None


def pronoun_problem(reference: str) -> str:
    """Return the refusal for "it" when the conversation does not point at one task."""
    return (
        f"{json.dumps(reference)} does not say which task: no single task has come up in this"
        " conversation. Ask the user which task they mean. Nothing was changed."
    )


def unseen_id_problem(task_id: str, title: str) -> str:
    """Return the refusal for an id that came from nowhere and names another task."""
    return (
        f"{task_id} has not come up in this conversation and is {json.dumps(title)}, which"
        " does not match what the user asked; nothing was changed. Pass words from the title"
        " as `task`, or look it up with list_tasks."
    )


def seen_ids(messages: Sequence[BaseMessage]) -> set[str]:
    """Return the task ids this conversation has shown: said by the user or in a tool result.

    Refusals do not count (they quote the guessed id back), nor does the model's own text.
    """
    seen: set[str] = set()
    for message in messages:
        if isinstance(message, HumanMessage) or (
            isinstance(message, ToolMessage) and message.status != "error"
        ):
            seen |= ids_in(message.text)
    return seen


def current_request(messages: Sequence[BaseMessage]) -> str:
    """Return the text of the newest user message: what this turn was asked to do."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


__all__ = [
    "MAX_CANDIDATES",
    "Resolution",
    "as_task_id",
    "current_request",
    "ids_in",
    "is_pronoun",
    "key_words",
    "matches",
    "names_title",
    "pronoun_problem",
    "recent_task_id",
    "resolve",
    "resolve_for",
    "seen_ids",
    "unseen_id_problem",
]
