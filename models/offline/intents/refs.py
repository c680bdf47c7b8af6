"""How a message names a task: ids, title words, "it", "the second one"; and aiming a tool at it."""

from __future__ import annotations

import re
from typing import Any

from models.offline.intents.kinds import (
    ADD_TAGS,
    MAX_BATCH,
    REMOVE_TAGS,
    BatchIntent,
    Intent,
    TaskRef,
    TextIntent,
    ToolIntent,
)
from models.offline.intents.text import FLAGS, TRAILING_FILLER, clean, strip_quotes

_TASK_ID = re.compile(r"(?<![\w#])(?:task[\s#-]*|#)0*(\d{1,9})\b", FLAGS)
_BARE_ID = re.compile(
    r"^(?:(?:i\s+mean|i\s+meant|it'?s|the\s+one\s+is|use|pick|that'?s)\s+)?"
    r"(?:task[\s#-]*|#)?0*(\d{1,9})(?:\s+please)?$",
    FLAGS,
)
_PRONOUN = re.compile(
    r"^(?:it|that|this|that\s+one|this\s+one|that\s+task|this\s+task|the\s+task|"
    r"the\s+(?:last|latest|previous|same|new)\s+(?:one|task)|the\s+one\s+(?:i|you)\s+just\s+\w+)$",
    FLAGS,
)
GENERIC_REF = re.compile(
    r"^(?:(?:a|any|some|the|my|your|new)\s+)?(?:tasks?|things?|stuff|items?|to-?dos?|"
    r"anything|something|entries|reminders?)$",
    FLAGS,
)
_BULK_REF = re.compile(
    r"^(?:all|every|everything|each|both)\b|\b(?:all|old|older|stale|completed|done|finished|"
    r"overdue)\s+(?:my\s+)?(?:tasks|ones|items|to-?dos)\b",
    FLAGS,
)
_REF_LEAD = re.compile(
    r"^(?:(?:the|my|our|a|an|that|this)\s+)*(?:(?:task|to-?do|item|reminder)\s+"
    r"(?:about|called|named|titled|for|to|on)?\s*)?(?:the\s+)?",
    FLAGS,
)
_REF_TAIL = re.compile(
    r"(?:\s+(?:task|to-?do|item|reminder|one|entry))?(?:\s+(?:from|off|on)\s+(?:my|the)\s+"
    r"(?:list|tasks|to-?do\s+list|to-?dos))?$",
    FLAGS,
)


def normalize_task_id(number: str | int) -> str:
    """Return the canonical id for a task number: 3 -> "TASK-0003"."""
    return f"TASK-{int(number):04d}"


def task_ids_in(text: str) -> list[str]:
    """Return the distinct task ids mentioned in `text` ("TASK-0003", "task 3", "#3")."""
    ids: list[str] = []
    for match in _TASK_ID.finditer(text):
        task_id = normalize_task_id(match.group(1))
        if task_id not in ids:
            ids.append(task_id)
    return ids


def bare_task_id(text: str) -> str | None:
    """Return the id when the whole message only names a task ("TASK-0003", "#3", "I mean 3")."""
    match = _BARE_ID.match(clean(text))
    return normalize_task_id(match.group(1)) if match else None


def loosen(words: str) -> str:
    """Trim plural and other endings so a title search also finds "groceries" for "grocery".

    Each word is cut to a prefix of itself, so everything the original words matched still
    matches; words shorter than four letters after trimming are left alone.
    """
    trimmed = []
    for word in words.split():
        for ending in ("ies", "ing", "es", "ed", "y", "s"):
            stem = word[: -len(ending)]
            if word.lower().endswith(ending) and len(stem) >= 4 and not word.lower().endswith("ss"):
                word = stem
                break
        trimmed.append(word)
    return " ".join(trimmed)


_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
_POSITION = re.compile(
    r"^(?:the\s+)?(?:(?P<word>first|second|third|fourth|fifth)|(?P<n>[1-9])(?:st|nd|rd|th))\s+"
    r"(?:one|task|item|entry)(?:\s+(?:on|in|from|of)\s+(?:the|my|that|this)\s+list)?$",
    FLAGS,
)


def task_ref(text: str) -> TaskRef | None:
    """Turn the words naming a task into a reference, or None if nothing is named."""
    cleaned = clean(text)
    unquoted = strip_quotes(cleaned)
    cleaned = (
        unquoted
        if unquoted != cleaned
        else _REF_REASON.sub("", TRAILING_FILLER.sub("", cleaned)).strip(" ,;")
    )
    ids = task_ids_in(cleaned)
    if ids:
        return TaskRef(task_id=ids[0])
    if _PRONOUN.match(cleaned):
        return TaskRef(pronoun=True)
    position = _POSITION.match(cleaned)
    if position:
        word = position["word"]
        return TaskRef(position=_ORDINALS[word.lower()] if word else int(position["n"]))
    words = _REF_TAIL.sub("", _REF_LEAD.sub("", cleaned, count=1), count=1).strip(" ,.:;'\"")
    return TaskRef(words=words) if words else None


# "delete the laundry task, it's done anyway": the clause after the comma gives a reason.
_REF_REASON = re.compile(
    r"\s*[,;\u2013\u2014]\s*(?:it'?s|it\s+is|that'?s|they'?re|since|because|as|i\s+(?:already|"
    r"don'?t|no\s+longer)|no\s+longer|not\s+needed)\b.*$",
    FLAGS,
)


def _is_generic(ref: TaskRef | None, raw: str) -> bool:
    return ref is None or bool(GENERIC_REF.match(clean(raw)))


_ID_ITEM = r"(?:tasks?[\s#-]*|#)?0*\d{1,9}"
ID_LIST = re.compile(
    rf"^(?:(?:both|the|numbers?|ids?)\s+)*(?:tasks?\s+)?{_ID_ITEM}"
    rf"(?:\s*(?:,\s*and|,|&|\+|\band\b|\bplus\b|\bas\s+well\s+as\b)\s*{_ID_ITEM})*"
    r"(?:\s+(?:too|as\s+well|both|please))?$",
    FLAGS,
)
_ID_NUMBER = re.compile(r"\d{1,9}")
_JOINED = re.compile(r"(?:,|&|\+|\band\b|\bplus\b|\bas\s+well\s+as\b)", FLAGS)


def _listed_ids(raw: str) -> list[str]:
    """Ids when `raw` only lists task numbers ("TASK-0002 and TASK-0003", "4, 5 and 6", "3")."""
    cleaned = clean(raw)
    if not ID_LIST.match(cleaned):
        return []
    return list(dict.fromkeys(normalize_task_id(n) for n in _ID_NUMBER.findall(cleaned)))


def targeted(tool: str, raw: str, args: dict[str, Any] | None = None) -> Intent:
    """Build a tool intent aimed at the task(s) named by `raw`, or say why it can't be."""
    ordered = dict(sorted((args or {}).items()))
    ids = _listed_ids(raw)
    if len(ids) > MAX_BATCH:
        return TextIntent("too_many", str(len(ids)))
    if len(ids) > 1:
        return BatchIntent(tuple(ToolIntent(tool, ordered, TaskRef(task_id=i)) for i in ids))
    if ids:
        return ToolIntent(tool, ordered, TaskRef(task_id=ids[0]))
    if _BULK_REF.search(raw):
        return TextIntent("bulk", tool)
    if task_ids_in(raw) and _JOINED.search(raw):
        # "TASK-0002 and the report": acting on the id alone would be a silent partial.
        return TextIntent("clarify_mixed", tool)
    titles = _SEVERAL_TITLES.split(clean(raw))
    several = 1 < len(titles) <= MAX_BATCH and not {ADD_TAGS, REMOVE_TAGS} & set(ordered)
    if several and all(_DETERMINER.match(t) for t in titles):
        # "the laundry and the dishes": each part names its own task, looked up one by one.
        refs = [task_ref(t) for t in titles]
        if all(r is not None and r.words for r in refs):
            return BatchIntent(tuple(ToolIntent(tool, ordered, r) for r in refs if r))
    ref = task_ref(raw)
    if _is_generic(ref, raw):
        return TextIntent("capability", tool)
    return ToolIntent(tool, ordered, ref)


_SEVERAL_TITLES = re.compile(r"\s*,\s*(?:and\s+)?(?=(?:the|my)\s)|\s+and\s+(?=(?:the|my)\s)", FLAGS)
_DETERMINER = re.compile(r"^(?:the|my)\s+\w", FLAGS)
