"""Reads: list and filter tasks, search them, show one task, summarise."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from models.offline.intents.kinds import Intent, ToolIntent
from models.offline.intents.refs import task_ref
from models.offline.intents.text import FLAGS, clean, cut, cut_all, strip_quotes
from tools.dates import find_date, parse_date, week_bounds
from tools.schemas import Priority, Status

_SUMMARY = re.compile(
    r"\b(?:summary|summari[sz]e|overview|stats|statistics|analy[sz]e|analysis|breakdown|"
    r"how\s+am\s+i\s+doing|how'?s\s+it\s+going|how\s+are\s+things|dashboard|status\s+report|"
    r"report\s+card|how\s+many\s+tasks(?:\s+do\s+i\s+have)?$|how\s+productive)\b",
    FLAGS,
)
_GET = re.compile(
    r"^(?:show|get|open|view|display|describe|fetch|details\s+(?:of|for|on|about)|"
    r"tell\s+me\s+(?:more\s+)?about|what(?:'s|\s+is|\s+about)|look\s+up|find|info\s+(?:on|about))"
    r"\s+(?:me\s+)?(?:the\s+details\s+(?:of|for)\s+)?(?P<ref>.+)$",
    FLAGS,
)
LIST_SIGNAL = re.compile(
    r"\b(?:tasks|to-?dos|plate|agenda|overdue|due|pending|completed|finished|in[\s-]progress|"
    r"backlog|list|late|outstanding|open\s+items|what\s+do\s+i\s+have|what'?s\s+(?:left|next|up)|"
    r"anything|something|(?:need|have|got)\s+to\s+do)\b",
    FLAGS,
)
_READ_VERB = re.compile(
    r"^(?:list|show|display|view|see|get|give|what|what's|whats|which|any|find|search|look|"
    r"do\s+i\s+have|are\s+there|is\s+there|tell\s+me|check|my)\b",
    FLAGS,
)
_VAGUE_NOUN = re.compile(r"\b(?:stuff|things?|items?|work)\b", FLAGS)
_EVERYTHING = re.compile(r"\b(?:everything|all|them|it\s+all)$", FLAGS)
_TEXT_FILTER = re.compile(
    r"\b(?:about|matching|containing|mentioning|regarding|related\s+to|named|called|titled|"
    r"with\s+the\s+words?|that\s+mention)\s+(?P<t>.+)$",
    FLAGS,
)
_SEARCH = re.compile(r"^(?:find|search(?:\s+for)?|look\s+(?:for|up))\s+(?P<t>.+)$", FLAGS)
_SEARCH_NOISE = re.compile(
    r"\b(?:my|the|all|any|tasks?|to-?dos?|items?|please|me|for|with|that|which|are|is)\b", FLAGS
)
_LIST_STATUS: list[tuple[re.Pattern[str], Status]] = [
    (
        re.compile(r"\b(?:in[\s-]progress|started|ongoing|working\s+on|active)\b", FLAGS),
        "in_progress",
    ),
    (
        re.compile(
            r"\b(?:pending|open|outstanding|incomplete|unfinished|remaining|not\s+(?:done|started|"
            r"completed|finished)|left\s+to\s+do|left)\b",
            FLAGS,
        ),
        "pending",
    ),
    (re.compile(r"\b(?:completed|done|finished|closed)\b", FLAGS), "completed"),
]
_LIST_PRIORITY: list[tuple[re.Pattern[str], Priority]] = [
    (re.compile(r"\b(?:urgent|critical)\b", FLAGS), "urgent"),
    (re.compile(r"\b(?:high[\s-]?priority|important|high[\s-]pri)\b", FLAGS), "high"),
    (re.compile(r"\blow[\s-]?priority\b", FLAGS), "low"),
    (re.compile(r"\b(?:normal|medium)[\s-]?priority\b", FLAGS), "normal"),
]
_OVERDUE = re.compile(r"\b(?:overdue|late|past\s+due|behind|missed)\b", FLAGS)
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "fourteen": 14, "thirty": 30, "a couple of": 2, "a few": 3,
}  # fmt: skip
_NUMBER = r"\d{1,3}|a\s+couple\s+of|a\s+few|" + "|".join(
    sorted((n for n in _NUMBERS if " " not in n), key=len, reverse=True)
)
_RANGE_THIS_WEEK = re.compile(r"\b(?:due\s+)?(?:this|the)\s+week\b", FLAGS)
_RANGE_NEXT_WEEK = re.compile(r"\b(?:due\s+)?next\s+week\b", FLAGS)
_RANGE_THIS_MONTH = re.compile(r"\b(?:due\s+)?this\s+month\b", FLAGS)
_RANGE_SOON = re.compile(
    r"\b(?:due\s+)?(?:soon|(?:within|in|over|during)\s+(?:the\s+)?(?:next|coming)\s+week|"
    r"(?:in\s+the\s+)?coming\s+week|within\s+(?:a|one|1)\s+week|upcoming)\b",
    FLAGS,
)
_RANGE_TODAY_TOMORROW = re.compile(
    r"\b(?:due\s+)?(?:today|tonight)\s+(?:or|and|&|\+)\s+(?:tomorrow|tmrw)\b", FLAGS
)
_RANGE_WEEKEND = re.compile(r"\b(?:due\s+)?(?:this\s+|over\s+the\s+|the\s+)?weekend\b", FLAGS)
_RANGE_NEXT_N = re.compile(
    rf"\b(?:due\s+)?(?:(?:in|within|over|during|for)\s+)?(?:the\s+)?(?:next|coming|upcoming|"
    rf"following)?\s*(?P<n>{_NUMBER})\s+(?P<u>days?|weeks?|months?)\b",
    FLAGS,
)
_BEFORE = re.compile(r"\b(?:due\s+)?(?:before|by|until|no\s+later\s+than)\s+(?P<d>.+)$", FLAGS)
_AFTER = re.compile(r"\b(?:due\s+)?(?:after|from)\s+(?P<d>.+)$", FLAGS)
_LIMIT = re.compile(
    r"\b(?:top|first|next|last)\s+(?P<n>\d{1,3})\b(?!\s+(?:days?|weeks?|months?)\b)", FLAGS
)
_LIST_TAG = re.compile(
    r"(?:\b(?:tagged|labell?ed)\s+(?:with\s+|as\s+)?(?:the\s+)?(?:tag\s+|label\s+)?#?(?P<a>[\w-]+)|"
    r"\b(?:with|having|under)\s+(?:the\s+|a\s+)?(?:tag|label)\s*:?\s*#?(?P<b>[\w-]+)|"
    r"(?<![\w&])#(?P<c>[A-Za-z][\w-]*))",
    FLAGS,
)


def _date_prefix(text: str, today: date) -> tuple[date | None, int]:
    """Parse the longest leading run of words in `text` that is a date; return it and its length."""
    words = text.split()
    for count in range(min(len(words), 5), 0, -1):
        phrase = " ".join(words[:count])
        try:
            return parse_date(phrase, today), len(phrase)
        except ValueError:
            continue
    return None, 0


def _span_ahead(match: re.Match[str], today: date) -> tuple[date, date]:
    """Today up to N days, weeks or months ahead ("in the next 7 days": today to today+7)."""
    raw = " ".join(match["n"].lower().split())
    count = int(raw) if raw.isdigit() else _NUMBERS[raw]
    unit = match["u"].lower()
    if unit.startswith("month"):
        return today, parse_date(f"in {count} months", today)
    return today, today + timedelta(days=count * (7 if unit.startswith("week") else 1))


def _list_dates(text: str, today: date, args: dict[str, Any]) -> str:
    """Fill due_before / due_after from the sentence; return what is left of it.

    Weeks are whole calendar weeks, Monday to Sunday (`tools.dates.week_bounds`): on a
    Sunday "this week" still covers the Monday before; "next week" is the following one.
    """
    monday, sunday = week_bounds(today)
    ahead = _RANGE_NEXT_N.search(text)
    if ahead is not None and (ahead["n"].isdigit() or ahead["n"].lower() in _NUMBERS):
        after, before = _span_ahead(ahead, today)
        args["due_after"], args["due_before"] = after.isoformat(), before.isoformat()
        return cut(text, ahead.span())
    ranges = [
        (_RANGE_TODAY_TOMORROW, (today, today + timedelta(days=1))),
        (_RANGE_NEXT_WEEK, (monday + timedelta(days=7), sunday + timedelta(days=7))),
        (_RANGE_THIS_WEEK, (monday, sunday)),
        (_RANGE_WEEKEND, (max(today, monday + timedelta(days=5)), sunday)),
        (_RANGE_THIS_MONTH, (today.replace(day=1), parse_date("end of month", today))),
        (_RANGE_SOON, (today, today + timedelta(days=7))),
    ]
    # "before next week" is a bound, not the range "next week".
    for pattern, key in ((_BEFORE, "due_before"), (_AFTER, "due_after")):
        match = pattern.search(text)
        if match:
            found, length = _date_prefix(match["d"], today)
            if found is not None:
                args[key] = found.isoformat()
                return cut(text, (match.start(), match.start("d") + length))
    for pattern, (after, before) in ranges:
        match = pattern.search(text)
        if match:
            args["due_after"], args["due_before"] = after.isoformat(), before.isoformat()
            return cut(text, match.span())
    located = find_date(text, today)
    if located is not None:
        args["due_after"] = args["due_before"] = located[0].isoformat()
        return cut(text, located[1])
    return text


def _list_filters(text: str, today: date) -> dict[str, Any]:
    """Turn a listing request into list_tasks arguments."""
    args: dict[str, Any] = {}
    tag = _LIST_TAG.search(text)
    if tag is not None:
        args["tag"] = (tag["a"] or tag["b"] or tag["c"]).lower()
        text = cut(text, tag.span())
    search = _SEARCH.match(text)
    explicit = _TEXT_FILTER.search(text)
    if explicit:
        text, words = text[: explicit.start()], explicit["t"]
    elif search:
        text, words = "", search["t"]
    else:
        words = ""
    if words:
        rest: dict[str, Any] = {}
        words = _list_dates(words, today, rest)
        args.update(rest)
        words = cut_all(strip_quotes(clean(words)), _SEARCH_NOISE)
        if words:
            args["text"] = words
    if _OVERDUE.search(text):
        args["overdue"] = True
        text = cut_all(text, _OVERDUE)
    for pattern, priority in _LIST_PRIORITY:
        if pattern.search(text):
            args["priority"] = priority
            text = cut_all(text, pattern)
            break
    for pattern, status in _LIST_STATUS:
        if pattern.search(text):
            args["status"] = status
            break
    limit = _LIMIT.search(text)
    if limit:
        args["limit"] = max(1, min(200, int(limit["n"])))
        text = cut(text, limit.span())
    if not args.get("overdue"):
        _list_dates(text, today, args)
    return dict(sorted(args.items()))


def parse_get(text: str, today: date) -> Intent | None:
    """Read a request to show one task, by id or by "the … task"."""
    match = _GET.match(text)
    if match is None:
        return None
    raw = match["ref"]
    ref = task_ref(raw)
    if ref is not None and ref.words is not None and _ONE_TASK.search(clean(raw)):
        # "show me the laundry task": one task named by its title, looked up.
        return ToolIntent("list_tasks", {"text": ref.words})
    if ref is None or ref.words is not None:
        return None
    if LIST_SIGNAL.search(raw) and ref.task_id is None:
        return None
    return ToolIntent("get_task", {}, ref)


_ONE_TASK = re.compile(r"^(?:the|my|that)\s+.+\s+(?:task|to-?do|item|reminder)$", FLAGS)


def parse_summary(text: str, today: date) -> Intent | None:
    """Read a request for a summary or overview of all tasks."""
    return ToolIntent("task_summary") if _SUMMARY.search(text) else None


def parse_list(text: str, today: date) -> Intent | None:
    """Read a listing, filtering or search request."""
    everything = _READ_VERB.match(text) and _EVERYTHING.search(text)
    if not (LIST_SIGNAL.search(text) or everything or _SEARCH.match(text)) and not (
        _LIST_TAG.search(text) or (_READ_VERB.match(text) and _VAGUE_NOUN.search(text))
    ):
        return None
    return ToolIntent("list_tasks", _list_filters(text, today))
