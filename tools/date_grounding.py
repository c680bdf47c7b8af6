"""Due dates a model passes are checked against the dates the user actually said.

Small models compute dates themselves even when told not to ("December 30" became
2027-12-30, "next Friday" a week late) and add due dates nobody asked for. The user's own
words are the ground truth: a model's date that matches none of them is replaced by the one
date the user gave, or dropped from a new task when the user gave none. A title that repeats
the date phrase the due date came from ("Call dentist tomorrow", due tomorrow) loses it.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from tools.dates import find_dates, parse_date

DATED_TOOLS = frozenset({"create_task", "update_task"})

_LOOSE_ENDS = re.compile(r"^[\s,;:.\-–—]+|[\s,;:\-–—]+$")


def ground_dates(name: str, args: dict[str, Any], request: str, today: date) -> dict[str, Any]:
    """Return `args` with `due_date` (and a create's title) made to agree with `request`.

    `request` is the user's latest message. A date the model wrote that the user also said
    (as a phrase or as the date it means) is kept; otherwise the single date the user said
    wins; a new task gets no due date when the user said none. Several different dates in
    the request leave the model's choice alone: which task gets which is its job.
    """
    if name not in DATED_TOOLS:
        return args
    grounded = dict(args)
    said = find_dates(request, today)
    due = grounded.get("due_date")
    if isinstance(due, str) and due.strip():
        try:
            meant = parse_date(due, today)
        except ValueError:
            return grounded  # the tool explains an unreadable date to the model
        dates = {found for found, _, _ in said}
        if due.strip().casefold() in request.casefold() or meant in dates:
            pass
        elif len(dates) == 1:
            grounded["due_date"] = next(iter(dates)).isoformat()
        elif not dates and name == "create_task":
            del grounded["due_date"]
    title = grounded.get("title")
    due = grounded.get("due_date")
    if isinstance(title, str) and isinstance(due, str) and due.strip():
        grounded["title"] = _without_date(title, parse_date(due, today), today)
    return grounded


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
