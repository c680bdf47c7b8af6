"""Plain-word answers to a pending approval: "yes" approves, "no" refuses, anything else asks."""

from __future__ import annotations

import re
from typing import Any

YES = frozenset(
    {
        "yes",
        "y",
        "yeah",
        "yep",
        "approve",
        "approved",
        "ok",
        "okay",
        "sure",
        "do it",
        "delete it",
        "go ahead",
        "confirm",
        "confirmed",
    }
)
NO = frozenset(
    {
        "no",
        "n",
        "nope",
        "cancel",
        "stop",
        "dont",
        "don't",
        "do not",
        "keep it",
        "reject",
        "deny",
        "denied",
    }
)

# Curly apostrophes (phones type them) count as straight ones; other punctuation is noise.
_NOISE = re.compile(r"[^\w\s']+")
# Politeness around the answer changes nothing: "yes please", "no thanks", "ok thank you".
_POLITE = re.compile(r"(?:^(?:oh|well|um+) )|(?: (?:please|pls|thanks|thank you))+$")


def _words(message: str) -> str:
    text = message.replace("\u2019", "'").lower()
    return _POLITE.sub("", " ".join(_NOISE.sub(" ", text).split()))


def answer_of(message: str) -> bool | None:
    """Return True for a clear yes, False for a clear no, None for anything else.

    Only the whole message counts ("yes!" and "OK." do; "yes, but rename it first" does not),
    so a new request is never mistaken for an answer.
    """
    words = _words(message)
    if words in YES:
        return True
    if words in NO:
        return False
    return None


_DOING = {"delete_task": "Deleting", "complete_task": "Completing", "update_task": "Changing"}


def waiting_sentence(question: dict[str, Any] | None) -> str:
    """Say in plain words which approval waits and how to answer it."""
    question = question or {}
    tool = str(question.get("tool") or "delete_task")
    task_id, title = question.get("task_id"), question.get("title")
    if not task_id:
        asked = str(question.get("question") or "An approval").rstrip("?")
        return f"{asked} is waiting for your answer: say yes to go ahead or no to leave it."
    what = f"{_DOING.get(tool, 'Changing')} {task_id}" + (f' "{title}"' if title else "")
    if tool == "delete_task":
        return f"{what} is waiting for your answer: say yes to delete it or no to keep it."
    return f"{what} is waiting for your answer: say yes to go ahead or no to leave it as it is."
