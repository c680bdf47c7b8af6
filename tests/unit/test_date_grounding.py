"""Due dates a model passes agree with what the user said (tools.date_grounding)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tools.date_grounding import ground_dates

MONDAY = date(2026, 12, 7)


@pytest.mark.parametrize(
    ("tool", "args", "request_text", "expected"),
    [
        # The user's phrase wins over the model's arithmetic.
        (
            "create_task",
            {"title": "Quarterly review", "due_date": "2026-12-18"},
            "add the quarterly review for friday, high priority",
            {"title": "Quarterly review", "due_date": "2026-12-11"},
        ),
        (
            "update_task",
            {"task": "report", "due_date": "2027-12-30"},
            "move the report to December 30",
            {"task": "report", "due_date": "2026-12-30"},
        ),
        # A date nobody said is not put on a new task.
        (
            "create_task",
            {"title": "Buy milk", "due_date": "next Friday"},
            "add a task to buy milk",
            {"title": "Buy milk"},
        ),
        # The model's date is the user's: kept as written.
        (
            "create_task",
            {"title": "Call mom", "due_date": "tomorrow"},
            "remind me to call mom tomorrow",
            {"title": "Call mom", "due_date": "tomorrow"},
        ),
        (
            "create_task",
            {"title": "Call mom", "due_date": "2026-12-08"},
            "remind me to call mom tomorrow",
            {"title": "Call mom", "due_date": "2026-12-08"},
        ),
        # The date phrase leaves the title once it is the due date.
        (
            "create_task",
            {"title": "Call dentist tomorrow", "due_date": "2026-12-08"},
            "remind me to call the dentist tomorrow",
            {"title": "Call dentist", "due_date": "2026-12-08"},
        ),
        (
            "create_task",
            {"title": "Team lunch on Thursday", "due_date": "thursday"},
            "team lunch on thursday",
            {"title": "Team lunch", "due_date": "thursday"},
        ),
        # Two dates in the request: which call gets which is the model's choice.
        (
            "create_task",
            {"title": "Pay rent", "due_date": "2026-12-11"},
            "call mom tomorrow and pay rent on friday",
            {"title": "Pay rent", "due_date": "2026-12-11"},
        ),
        # An update without a date in the request keeps what the model sent; other tools alone.
        (
            "update_task",
            {"task": "report", "due_date": "2026-12-20"},
            "push the report back",
            {"task": "report", "due_date": "2026-12-20"},
        ),
        ("list_tasks", {"due_before": "2027-01-01"}, "what's due", {"due_before": "2027-01-01"}),
        # A title that is only a date keeps it (nothing else would remain).
        (
            "create_task",
            {"title": "Tomorrow", "due_date": "tomorrow"},
            "a task called Tomorrow due tomorrow",
            {"title": "Tomorrow", "due_date": "tomorrow"},
        ),
    ],
)
def test_the_users_words_decide_the_due_date(
    tool: str, args: dict[str, Any], request_text: str, expected: dict[str, Any]
) -> None:
    assert ground_dates(tool, args, request_text, MONDAY) == expected
