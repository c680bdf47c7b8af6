"""Natural due-date parsing: whole phrases and phrases inside sentences."""

from __future__ import annotations

from datetime import date

import pytest

from tools.dates import find_date, parse_date, week_bounds

SUNDAY = date(2026, 11, 22)
WEDNESDAY = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-03", date(2026, 12, 3)),
        ("today", SUNDAY),
        ("Today", SUNDAY),
        ("tonight", SUNDAY),
        ("tomorrow", date(2026, 11, 23)),
        ("yesterday", date(2026, 11, 21)),
        ("the day after tomorrow", date(2026, 11, 24)),
        ("friday", date(2026, 11, 27)),
        ("on friday", date(2026, 11, 27)),
        ("Fri", date(2026, 11, 27)),
        ("sunday", date(2026, 11, 29)),  # today is excluded
        ("this friday", date(2026, 11, 27)),
        ("this sunday", SUNDAY),
        ("next friday", date(2026, 11, 27)),  # the Friday of next week (week starts tomorrow)
        ("next monday", date(2026, 11, 23)),
        ("last friday", date(2026, 11, 20)),
        ("end of week", SUNDAY),  # Friday has passed
        ("end of the week", SUNDAY),
        ("next week", date(2026, 11, 23)),
        ("end of next week", date(2026, 11, 27)),
        ("end of month", date(2026, 11, 30)),
        ("end of the month", date(2026, 11, 30)),
        ("next month", date(2026, 12, 1)),
        ("in 3 days", date(2026, 11, 25)),
        ("in 2 weeks", date(2026, 12, 6)),
        ("in a week", date(2026, 11, 29)),
        ("in a month", date(2026, 12, 22)),
        ("in two days", date(2026, 11, 24)),
        ("3 days from now", date(2026, 11, 25)),
        ("Dec 3", date(2026, 12, 3)),
        ("December 3rd", date(2026, 12, 3)),
        ("3 Dec", date(2026, 12, 3)),
        ("the 3rd of December", date(2026, 12, 3)),
        ("Dec 3, 2027", date(2027, 12, 3)),
        ("12/03", date(2026, 12, 3)),
        ("12/3/2027", date(2027, 12, 3)),
        ("by Dec 3", date(2026, 12, 3)),
        ("due next Friday", date(2026, 11, 27)),
        ("due by tomorrow", date(2026, 11, 23)),
        ("Nov 1", date(2027, 11, 1)),  # already passed this year
        ("Nov 22", SUNDAY),  # today counts as not passed
        ("Feb 29", date(2028, 2, 29)),  # next leap day
        ("  tomorrow. ", date(2026, 11, 23)),
    ],
)
def test_parse_date_on_a_sunday(text: str, expected: date) -> None:
    assert parse_date(text, SUNDAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("friday", date(2026, 11, 27)),
        ("this friday", date(2026, 11, 27)),
        ("next friday", date(2026, 12, 4)),
        ("this monday", date(2026, 11, 30)),  # already passed this week
        ("wednesday", date(2026, 12, 2)),
        ("this wednesday", WEDNESDAY),
        ("end of week", date(2026, 11, 27)),
        ("next week", date(2026, 11, 30)),
        ("weekend", date(2026, 11, 28)),
    ],
)
def test_parse_date_midweek(text: str, expected: date) -> None:
    assert parse_date(text, WEDNESDAY) == expected


@pytest.mark.parametrize("text", ["", "blah", "someday soon", "Feb 30", "13/45", "2026-02-30"])
def test_parse_date_rejects_with_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_date(text, SUNDAY)
    message = str(info.value)
    assert "date" in message
    assert "next friday" in message and "2026-12-03" in message


def test_parse_date_invalid_day_names_the_problem() -> None:
    with pytest.raises(ValueError, match="February 30 is not a valid date"):
        parse_date("Feb 30", SUNDAY)


def test_today_defaults_to_call_time() -> None:
    assert parse_date("today") == date.today()
    assert find_date("due today") == (date.today(), (0, 9))


def test_week_bounds() -> None:
    assert week_bounds(SUNDAY) == (date(2026, 11, 16), SUNDAY)
    assert week_bounds(WEDNESDAY) == (date(2026, 11, 23), date(2026, 11, 29))


@pytest.mark.parametrize(
    ("sentence", "expected", "phrase"),
    [
        (
            "create a task for the quarterly review due next Friday",
            date(2026, 11, 27),
            "due next Friday",
        ),
        ("remind me to call mom tomorrow", date(2026, 11, 23), "tomorrow"),
        ("move it to next Monday", date(2026, 11, 23), "next Monday"),
        ("pay rent by Dec 3 please", date(2026, 12, 3), "by Dec 3"),
        ("dentist on 12/03", date(2026, 12, 3), "on 12/03"),
        ("renew passport in 2 weeks", date(2026, 12, 6), "in 2 weeks"),
        ("taxes due 2027-04-15", date(2027, 4, 15), "due 2027-04-15"),
        ("finish slides by end of month", date(2026, 11, 30), "by end of month"),
        ("TASK-0003 to December 3rd", date(2026, 12, 3), "December 3rd"),
        # Two dates: the one introduced by "due" wins.
        ("prepare the friday demo due tomorrow", date(2026, 11, 23), "due tomorrow"),
        # Otherwise the last one.
        ("move friday standup to monday", date(2026, 11, 23), "monday"),
    ],
)
def test_find_date_returns_date_and_span(sentence: str, expected: date, phrase: str) -> None:
    found = find_date(sentence, SUNDAY)
    assert found is not None
    day, (start, end) = found
    assert day == expected
    assert sentence[start:end] == phrase


@pytest.mark.parametrize(
    "sentence",
    [
        "list my tasks",
        "complete TASK-0003",
        "I sat in the sun",  # abbreviations are not dates inside sentences
        "call may about the report",
        "buy 2 apples",
        "rename task 12 to Budget draft",
        "prepare slides for Monday's meeting",  # possessive, not a due date
    ],
)
def test_find_date_ignores_sentences_without_dates(sentence: str) -> None:
    assert find_date(sentence, SUNDAY) is None
