"""What a model writes into a task agrees with what the user said (tools.grounding)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tools.grounding import ground_call

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
        # Fields nobody asked for leave a new task, and a change that does what was asked.
        (
            "create_task",
            {"title": "Fix tap", "priority": "high", "tags": ["fix", "tap"]},
            "add a task to fix the leaking tap",
            {"title": "Fix tap"},
        ),
        (
            "create_task",
            {"title": "Water plants", "priority": "urgent", "tags": ["home"]},
            "urgent: water the plants, tag it home",
            {"title": "Water plants", "priority": "urgent", "tags": ["home"]},
        ),
        (
            "update_task",
            {"task": "insurance", "title": "Insurance 2027", "due_date": "2026-12-31"},
            "rename the insurance task to Insurance 2027",
            {"task": "insurance", "title": "Insurance 2027"},
        ),
        (
            "update_task",
            {"task": "report", "title": "Q4 report", "priority": "high"},
            "call the report Q4 report",
            {"task": "report", "title": "Q4 report"},
        ),
        (
            "update_task",
            {"task": "tap", "priority": "urgent", "status": "in_progress", "description": "Fix"},
            "make the tap task urgent",
            {"task": "tap", "priority": "urgent"},
        ),
        (
            "create_task",
            {"title": "Call mom", "description": "Ask about Sunday"},
            "add call mom, note: ask about Sunday",
            {"title": "Call mom", "description": "Ask about Sunday"},
        ),
        # A change made only of fields the words do not show is what the user asked for.
        ("update_task", {"task": "gym", "priority": "high"}, "bump the gym task", None),
        # A title that is only a date keeps it (nothing else would remain).
        (
            "create_task",
            {"title": "Tomorrow", "due_date": "tomorrow"},
            "a task called Tomorrow due tomorrow",
            {"title": "Tomorrow", "due_date": "tomorrow"},
        ),
    ],
)
def test_the_users_words_decide_dates_priority_and_tags(
    tool: str, args: dict[str, Any], request_text: str, expected: dict[str, Any] | None
) -> None:
    assert ground_call(tool, args, request_text, MONDAY) == (args if expected is None else expected)


def test_a_bare_yes_carries_the_words_it_agrees_to() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from tools.grounding import request_words

    offer = [HumanMessage("Book dentist, low prio"), AIMessage("Add it?"), HumanMessage("yes")]
    assert request_words(offer) == "Book dentist, low prio\nyes"
    assert request_words([HumanMessage("old, urgent"), HumanMessage("add milk")]) == "add milk"
