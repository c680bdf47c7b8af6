"""Natural-language due dates: parse a whole phrase, or find one inside a sentence.

Weeks run Monday to Sunday. The readings chosen for the ambiguous phrases:

* ``friday`` / ``on friday`` / ``coming friday``: the next Friday, today excluded.
* ``this friday``: the Friday of the current week; if that day has passed, the next one.
* ``next friday``: the Friday of next week (the week starting on the coming Monday).
  On a Sunday that is the same day as plain ``friday``; on a Wednesday it is nine days out.
* ``last friday``: the most recent Friday before today.
* ``end of week`` / ``this week``: Friday of the current week, or today once Friday has passed.
  That is the reading for a single due date; asked to *list* what is due ``this week``, the
  offline engine covers the whole calendar week from `week_bounds` (Monday to Sunday), so on
  a Sunday it still includes the week's earlier days, and ``next week`` is the following
  Monday to Sunday.
* ``weekend`` / ``this weekend``: the coming Saturday, or today on a Saturday or Sunday.
* ``next week``: Monday of next week. ``end of next week``: Friday of next week.
* ``end of month``: the last day of the current month. ``next month``: its first day.
* Month and day without a year (``Dec 3``, ``3 December``, ``12/03``): this year unless
  that day has already passed, else next year. Numeric dates are US style, month first.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, timedelta

__all__ = ["ACCEPTED_FORMS", "find_date", "parse_date", "week_bounds"]

ACCEPTED_FORMS = (
    "2026-12-03, today, tomorrow, tonight, yesterday, friday, this friday, next friday, "
    "end of week, next week, end of month, in 3 days, in 2 weeks, in a month, "
    "Dec 3, December 3rd, 3 Dec, 12/03 (month/day), optionally after 'due', 'by' or 'on'"
)

_WEEKDAYS: dict[str, int] = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
    "tues": 1,
    "weds": 2,
    "thur": 3,
    "thurs": 3,
}
# Three-letter abbreviations are ordinary words too ("I sat", "the sun"), so they are only
# accepted when the whole input is a date, never when searching inside a sentence.
_WEEKDAY_ABBREVIATIONS: dict[str, int] = {
    "mon": 0,
    "tue": 1,
    "wed": 2,
    "thu": 3,
    "fri": 4,
    "sat": 5,
    "sun": 6,
}
_MONTHS: dict[str, int] = {
    "january": 1,
    "february": 2,
    "march": 3,
    "april": 4,
    "may": 5,
    "june": 6,
    "july": 7,
    "august": 8,
    "september": 9,
    "october": 10,
    "november": 11,
    "december": 12,
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_NUMBER_WORDS: dict[str, int] = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "a couple of": 2,
    "a couple": 2,
    "a few": 3,
}

_PREFIX = re.compile(r"^(?:due(?:\s+(?:on|by))?|by|on)\s+", re.IGNORECASE)
_PREFIX_BEFORE = re.compile(r"(?:\b(?:due(?:\s+(?:on|by))?|by|on)\s+)$", re.IGNORECASE)


def _alternation(words: list[str]) -> str:
    # Longest first, so "september" wins over "sep" and "a couple of" over "a".
    return "|".join(
        re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True)
    )


_MONTH_RE = _alternation(list(_MONTHS))
_NUMBER_RE = r"\d{1,3}|" + _alternation(list(_NUMBER_WORDS))
_ORDINAL = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<y>\d{4}))?"


def _next_weekday(today: date, weekday: int) -> date:
    """Return the first `weekday` strictly after `today`."""
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def week_bounds(today: date) -> tuple[date, date]:
    """Return the Monday and Sunday of the week containing `today`."""
    monday = today - timedelta(days=today.weekday())
    return monday, monday + timedelta(days=6)


def _end_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _make_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"{year:04d}-{month:02d}-{day:02d} is not a valid date.") from exc


def _month_day(today: date, month: int, day: int, year: str | None) -> date:
    """Resolve a month and day, picking the next occurrence when no year is given."""
    if year is not None:
        full_year = int(year)
        return _make_date(full_year + 2000 if full_year < 100 else full_year, month, day)
    # Four years ahead is enough to reach the next February 29.
    for candidate_year in range(today.year, today.year + 5):
        if _valid(candidate_year, month, day):
            candidate = date(candidate_year, month, day)
            if candidate >= today:
                return candidate
    name = calendar.month_name[month] if 1 <= month <= 12 else f"Month {month}"
    raise ValueError(f"{name} {day} is not a valid date.")


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


# --- rule handlers: (match, today) -> date ---------------------------------------------


def _iso(m: re.Match[str], today: date) -> date:
    return _make_date(int(m["y"]), int(m["m"]), int(m["d"]))


def _numeric(m: re.Match[str], today: date) -> date:
    return _month_day(today, int(m["m"]), int(m["d"]), m["y"])


def _named_month(m: re.Match[str], today: date) -> date:
    return _month_day(today, _MONTHS[m["mon"].lower()], int(m["d"]), m["y"])


def _relative_day(m: re.Match[str], today: date) -> date:
    word = " ".join(m["w"].lower().split())
    if word in {"today", "tonight", "this evening", "this afternoon"}:
        return today
    if word in {"yesterday"}:
        return today - timedelta(days=1)
    if "after" in word:
        return today + timedelta(days=2)
    return today + timedelta(days=1)


def _weekday(m: re.Match[str], today: date) -> date:
    name = m["wd"].lower().rstrip(".")
    weekday = _WEEKDAYS.get(name, _WEEKDAY_ABBREVIATIONS.get(name, 0))
    modifier = " ".join((m["mod"] or "").lower().split())
    monday, _ = week_bounds(today)
    if modifier == "next":
        return monday + timedelta(days=7 + weekday)
    if modifier == "last":
        return today - timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)
    if modifier == "this":
        this_week = monday + timedelta(days=weekday)
        return this_week if this_week >= today else _next_weekday(today, weekday)
    return _next_weekday(today, weekday)


def _week_phrase(m: re.Match[str], today: date) -> date:
    phrase = " ".join(m["w"].lower().split())
    monday, _ = week_bounds(today)
    if phrase == "next week":
        return monday + timedelta(days=7)
    if phrase.startswith("end of next week"):
        return monday + timedelta(days=11)
    if "weekend" in phrase:
        return today if today.weekday() >= 5 else monday + timedelta(days=5)
    friday = monday + timedelta(days=4)
    return friday if friday >= today else today


def _month_phrase(m: re.Match[str], today: date) -> date:
    phrase = " ".join(m["w"].lower().split())
    if phrase == "next month":
        return _add_months(today.replace(day=1), 1)
    if "next month" in phrase:
        return _end_of_month(_add_months(today.replace(day=1), 1))
    return _end_of_month(today)


def _offset(m: re.Match[str], today: date) -> date:
    raw = " ".join(m["n"].lower().split())
    count = int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]
    unit = m["u"].lower()
    if unit.startswith("day"):
        return today + timedelta(days=count)
    if unit.startswith("week"):
        return today + timedelta(weeks=count)
    if unit.startswith("month"):
        return _add_months(today, count)
    return _add_months(today, 12 * count)


Rule = tuple[re.Pattern[str], Callable[[re.Match[str], date], date]]


def _rules(loose: bool) -> list[Rule]:
    weekday_names = list(_WEEKDAYS) + (list(_WEEKDAY_ABBREVIATIONS) if loose else [])
    weekday_re = _alternation(weekday_names)
    sources: list[tuple[str, Callable[[re.Match[str], date], date]]] = [
        (r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})", _iso),
        (r"(?P<m>\d{1,2})/(?P<d>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?", _numeric),
        (rf"(?P<mon>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}}){_ORDINAL}{_YEAR}", _named_month),
        (
            rf"(?:the\s+)?(?P<d>\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?(?P<mon>{_MONTH_RE})\.?{_YEAR}",
            _named_month,
        ),
        (
            r"(?P<w>(?:the\s+)?day\s+after\s+tomorrow|today|tonight|this\s+evening|"
            r"this\s+afternoon|tomorrow|tmrw|tmr|yesterday)",
            _relative_day,
        ),
        (rf"(?:(?P<mod>this(?:\s+coming)?|next|coming|last)\s+)?(?P<wd>{weekday_re})\.?", _weekday),
        (
            r"(?P<w>(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?week|(?:the\s+)?end\s+of\s+next\s+week|"
            r"eow|this\s+week|next\s+week|(?:this\s+|the\s+)?weekend)",
            _week_phrase,
        ),
        (
            r"(?P<w>(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?month|(?:the\s+)?end\s+of\s+next\s+month|"
            r"eom|next\s+month)",
            _month_phrase,
        ),
        (rf"in\s+(?P<n>{_NUMBER_RE})\s+(?P<u>days?|weeks?|months?|years?)", _offset),
        (
            rf"(?P<n>{_NUMBER_RE})\s+(?P<u>days?|weeks?|months?|years?)\s+from\s+(?:now|today)",
            _offset,
        ),
    ]
    # "Monday's meeting" names a meeting, not a due date, hence the possessive check.
    boundary_before, boundary_after = r"(?<![\w/-])", r"(?![\w/-]|['\u2019]s\b)"
    return [
        (re.compile(boundary_before + source + boundary_after, re.IGNORECASE), handler)
        for source, handler in sources
    ]


_LOOSE_RULES = _rules(loose=True)
_STRICT_RULES = _rules(loose=False)


def parse_date(text: str, today: date | None = None) -> date:
    """Parse a due-date phrase such as "next friday", "Dec 3" or "2026-12-03".

    Leading "due", "by" and "on" are ignored. `today` defaults to the current date.
    Raises ValueError naming the accepted forms when the phrase is not understood.
    """
    today = today or date.today()
    phrase = " ".join(text.strip().strip(".,!?;:").split())
    while (m := _PREFIX.match(phrase)) is not None:
        phrase = phrase[m.end() :]
    for pattern, handler in _LOOSE_RULES:
        match = pattern.fullmatch(phrase)
        if match is not None:
            try:
                return handler(match, today)
            except ValueError as exc:
                raise ValueError(f"{exc} Accepted forms: {ACCEPTED_FORMS}.") from None
    raise ValueError(
        f"I don't understand the date {text.strip()!r}. Accepted forms: {ACCEPTED_FORMS}."
    )


def find_dates(text: str, today: date | None = None) -> list[tuple[date, tuple[int, int], bool]]:
    """Find every date phrase in a sentence, in order, without overlaps.

    Each is (date, (start, end), introduced): the span is widened to cover a leading "due",
    "by" or "on", and `introduced` says whether one was there.
    """
    today = today or date.today()
    candidates: list[tuple[int, int, date]] = []
    for pattern, handler in _STRICT_RULES:
        for match in pattern.finditer(text):
            try:
                found = handler(match, today)
            except ValueError:
                continue
            candidates.append((match.start(), match.end(), found))
    # Keep only maximal spans: "next friday" rather than the "friday" inside it.
    candidates.sort(key=lambda c: (c[0], -(c[1] - c[0])))
    chosen: list[tuple[date, tuple[int, int], bool]] = []
    for start, end, found in candidates:
        if chosen and start < chosen[-1][1][1]:
            continue
        prefix = _PREFIX_BEFORE.search(text, 0, start)
        if prefix is not None and prefix.end() == start:
            chosen.append((found, (prefix.start(), end), True))
        else:
            chosen.append((found, (start, end), False))
    return chosen


def find_date(text: str, today: date | None = None) -> tuple[date, tuple[int, int]] | None:
    """Find a date phrase inside a sentence.

    Returns the date and the (start, end) span of the phrase, widened to cover a leading
    "due", "by" or "on", or None when the sentence holds no date. When there are several,
    one introduced by "due"/"by"/"on" wins, else the last one.
    """
    chosen = find_dates(text, today)
    if not chosen:
        return None
    introduced = [c for c in chosen if c[2]]
    found, span, _ = (introduced or chosen)[-1]
    return found, span
