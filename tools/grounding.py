"""What a model writes into a task is checked against what the user actually said.

Small models compute dates themselves even when told not to ("December 30" became
2027-12-30, "next Friday" a week late), and fill in fields nobody asked for: a due date on
"add a task to buy milk", priority high on a rename, tags made of the title's words. The
user's own words are the ground truth:

* a model's date that matches none of the user's is replaced by the one date the user gave,
  and a date, priority, tags, status or notes the user did not mention are dropped from a new
  task, and from a change that also does what was asked;
* a title that repeats the date phrase its due date came from ("Call dentist tomorrow", due
  tomorrow) loses it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from tools.dates import find_dates, parse_date

GROUNDED_TOOLS = frozenset({"create_task", "update_task"})

_LOOSE_ENDS = re.compile(r"^[\s,;:.\-–—]+|[\s,;:\-–—]+$")
_PRIORITY_WORDS = re.compile(
    r"\b(?:urgent\w*|asap|critical|important|crucial|priorit\w*|prio|p[0-4]|high|low|normal"
    r"|medium|top|minor|trivial|whenever|someday|rush|emergency)\b",
    re.IGNORECASE,
)
_TAG_WORDS = re.compile(r"#\w|\b(?:tag\w*|label\w*)\b", re.IGNORECASE)
_STATUS_WORDS = re.compile(
    r"\b(?:done|complete\w*|finish\w*|status|start\w*|progress|working|pending|open|reopen\w*"
    r"|undo|revert|back|check\w*\s+off|tick\w*|close\w*)\b",
    re.IGNORECASE,
)
_NOTE_WORDS = re.compile(
    r"\b(?:note\w*|descri\w*|detail\w*|comment\w*|say\w*|says|write|mention\w*)\b|:",
    re.IGNORECASE,
)
_CONFIRMATION = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|sure|ok(?:ay)?|please(?: do)?|do it|go ahead|confirm(?:ed)?"
    r"|correct|right|exactly|sounds good)\W*(?:please|thanks?|thank you)?\W*$",
    re.IGNORECASE,
)


def request_words(messages: Sequence[BaseMessage]) -> str:
    """The user's words a call answers: the newest message, and what a bare "yes" agrees to."""
    said = [m.text for m in messages if isinstance(m, HumanMessage)]
    if len(said) >= 2 and _CONFIRMATION.match(said[-1]):
        return f"{said[-2]}\n{said[-1]}"
    return said[-1] if said else ""


def ground_call(name: str, args: dict[str, Any], request: str, today: date) -> dict[str, Any]:
    """Return `args` of a create or update with its fields made to agree with `request`.

    `request` is the user's latest message. A date the model wrote that the user also said
    (as a phrase or as the date it means) is kept; otherwise the single date the user said
    wins. Several different dates leave the model's choice alone: which task gets which is
    its job. An update made only of unasked fields keeps them: the user asked for a change
    in words these checks do not read ("bump it", "push it back").
    """
    if name not in GROUNDED_TOOLS:
        return args
    grounded = dict(args)
    unasked = _unasked_fields(grounded, request, today)
    changes = set(grounded) - {"task"}
    if name == "create_task" or changes - unasked:
        for field in unasked:
            del grounded[field]
    due = grounded.get("due_date")
    if isinstance(due, str) and due.strip() and "due_date" not in unasked:
        dates = {found for found, _, _ in find_dates(request, today)}
        if len(dates) == 1 and due.strip().casefold() not in request.casefold():
            grounded["due_date"] = next(iter(dates)).isoformat()
    title = grounded.get("title")
    due = grounded.get("due_date")
    if isinstance(title, str) and isinstance(due, str) and due.strip():
        try:
            grounded["title"] = _without_date(title, parse_date(due, today), today)
        except ValueError:
            pass  # the tool explains an unreadable date to the model
    return grounded


def _unasked_fields(args: dict[str, Any], request: str, today: date) -> set[str]:
    """The fields of `args` the request gives no sign of asking for."""
    unasked: set[str] = set()
    due = args.get("due_date")
    if isinstance(due, str) and due.strip():
        if not find_dates(request, today) and due.strip().casefold() not in request.casefold():
            unasked.add("due_date")
    if args.get("priority") not in (None, "normal") and not _PRIORITY_WORDS.search(request):
        unasked.add("priority")
    if args.get("tags") and not _TAG_WORDS.search(request):
        unasked.add("tags")
    if args.get("status") is not None and not _STATUS_WORDS.search(request):
        unasked.add("status")
    if args.get("description") and not _NOTE_WORDS.search(request):
        unasked.add("description")
    return unasked


def _without_date(title: str, due: date, today: date) -> str:
    """`title` without a date phrase meaning `due` at its start or end, if words remain."""
    for found, (start, end), _ in find_dates(title, today):
        if found != due or (start > 0 and end < len(title.rstrip(" .!"))):
            continue
        rest = _LOOSE_ENDS.sub("", title[:start] + " " + title[end:])
        rest = re.sub(r"\s{2,}", " ", rest)
        if rest and any(ch.isalpha() for ch in rest):
            return rest
    return title
