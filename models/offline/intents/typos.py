"""Typos in the command word ("creat", "delte") and a few key words ("tsk")."""

from __future__ import annotations

import re

# Typed in a hurry: the first word of a command, and a few words that carry the meaning.
_VERBS = (
    "create", "delete", "remove", "complete", "finish", "rename", "update", "change", "remind",
    "reschedule", "postpone", "search", "summary", "summarize", "prioritize",
)  # fmt: skip
_SHORT_VERBS = ("add", "show", "list", "mark", "find", "undo", "start")
_KEYWORDS = ("urgent", "overdue", "priority", "important", "tomorrow", "pending", "completed")
_COURTESY = frozenset(
    "please pls plz can could would will you u kindly ok okay so and also now then hey just "
    "go ahead i want to i'd like let's lets quickly oh oops sorry".split()
)


def _typo_distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbouring letters as one edit."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _inflections(words: tuple[str, ...]) -> frozenset[str]:
    endings = ("", "s", "d", "r", "ed", "es", "er", "ing", "ly")
    return frozenset(w + e for w in words for e in endings) | {w[:-1] + "ing" for w in words}


# Real words one letter away from a command word: never "corrected".
_NEAR_MISSES = (
    "charge", "chance", "crate", "remote", "finnish", "compete", "rewind", "remand", "upstate",
    "starch", "competed", "impotent", "spending", "reminder", "creator",
)  # fmt: skip
_REAL_WORDS = _inflections(_VERBS + _SHORT_VERBS + _KEYWORDS + _NEAR_MISSES)


def _closest(word: str, vocabulary: tuple[str, ...], limit: int) -> str | None:
    lowered = word.lower()
    if lowered in _REAL_WORDS or len(lowered) < 3:
        return None
    for known in vocabulary:
        if _typo_distance(lowered, known) <= limit and lowered[0] in known[:2]:
            return known
    return None


def _swapped(word: str) -> str | None:
    """A short command word with two letters swapped ("shwo", "lsit"); "shop" stays "shop"."""
    lowered = word.lower()
    for known in _SHORT_VERBS:
        if lowered != known and sorted(lowered) == sorted(known):
            if _typo_distance(lowered, known) == 1:
                return known
    return None


def _task_noun(word: str) -> str | None:
    """Read "tsk", "taks" or "tsaks" as task(s); the real words stay as they are."""
    lowered = word.lower()
    if lowered in {"task", "tasks"} or not 3 <= len(lowered) <= 6:
        return None
    plural = lowered.endswith("s") and len(lowered) >= 4
    noun = "tasks" if plural else "task"
    if sorted(lowered) in (sorted(noun), sorted("task")) or lowered in {"tsk", "tsks", "taskk"}:
        return noun
    return "tasks" if sorted(lowered) == sorted("tasks") else None


_WORD = re.compile(r"[A-Za-z']+|[^A-Za-z']+")


def fix_typos(text: str) -> str:
    """Correct typos in the command word ("creat", "delte") and a few key words ("tsk")."""
    pieces = _WORD.findall(text)
    seen_command = False
    for index, piece in enumerate(pieces):
        if not piece[0].isalpha() or len(piece) > 12:
            seen_command = seen_command or any(c.isalnum() for c in piece)
            continue
        fixed = _task_noun(piece)
        if fixed is None and not seen_command and piece.lower() not in _COURTESY:
            seen_command = True
            fixed = _closest(piece, _VERBS, 1 if len(piece) < 8 else 2) or _swapped(piece)
        if fixed is None and len(piece) >= 5:
            fixed = _closest(piece, _KEYWORDS, 1 if len(piece) < 8 else 2)
        if fixed is not None:
            pieces[index] = fixed
    return "".join(pieces)
