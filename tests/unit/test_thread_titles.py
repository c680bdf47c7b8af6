"""Thread titles summarised from a first turn, and plain-word answers to an approval."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from server.runs.approval_words import answer_of, waiting_sentence
from server.runs.thread_titles import MAX_TITLE_CHARS, cleaned, cut, summarise


def turn(said: str, *calls: tuple[str, dict[str, object], dict[str, object]]) -> list[BaseMessage]:
    messages: list[BaseMessage] = [HumanMessage(said)]
    for n, (name, args, result) in enumerate(calls):
        messages.append(AIMessage("", tool_calls=[{"id": f"c{n}", "name": name, "args": args}]))
        messages.append(ToolMessage(json.dumps(result), tool_call_id=f"c{n}"))
    messages.append(AIMessage("Done."))
    return messages


def test_a_created_task_names_the_thread() -> None:
    made = turn(
        "pls add renew passport",
        ("create_task", {"title": "x"}, {"task": {"title": "renew the passport"}}),
    )
    assert summarise(made) == "Renew the passport"
    two = turn(
        "add two",
        ("create_task", {"title": "Call mom"}, {}),
        ("create_task", {"title": "Call dad"}, {}),
    )
    assert summarise(two) == "Call mom and 1 more"


@pytest.mark.parametrize(
    ("args", "title"),
    [
        ({}, "My open tasks"),
        ({"overdue": True}, "My overdue tasks"),
        ({"priority": "high", "status": "pending"}, "My high priority pending tasks"),
        ({"status": "completed", "tag": "home"}, "My completed tasks tagged home"),
    ],
)
def test_a_listing_names_what_was_listed(args: dict[str, object], title: str) -> None:
    assert summarise(turn("show me", ("list_tasks", args, {"tasks": []}))) == title


def test_a_change_names_the_task_changed_and_only_the_first_turn_counts() -> None:
    done = turn(
        "finish it", ("complete_task", {"task": "TASK-0001"}, {"task": {"title": "Buy milk"}})
    )
    later = turn("add a task", ("create_task", {"title": "Later"}, {}))
    assert summarise(done + later) == "Complete Buy milk"
    asked = [
        HumanMessage("delete TASK-0002"),
        AIMessage(
            "", tool_calls=[{"id": "c", "name": "delete_task", "args": {"task": "TASK-0002"}}]
        ),
    ]
    assert summarise(asked) == "Delete TASK-0002"


def test_other_turns_are_titled_with_the_request_without_filler() -> None:
    assert summarise(turn("Hey, can you please tell me a joke? Thanks")) == "Tell me a joke"
    assert cleaned("hello hi could you please help me plan my week please") == "plan my week"
    assert summarise([AIMessage("hi")]) == ""
    long = cut("word " * 30)
    assert len(long) <= MAX_TITLE_CHARS and not long.endswith(" ") and long.startswith("Word")
    assert cut("\x1b[31mred\x1b[0m alert!!!").endswith("alert")


@pytest.mark.parametrize(
    "said",
    ["yes", "Yes!", " OK. ", "do it", "Delete it!", "y", "Sure", "yes please", "Ok, thanks!"],
)
def test_a_clear_yes(said: str) -> None:
    assert answer_of(said) is True


@pytest.mark.parametrize(
    "said", ["no", "N", "cancel", "Don't!", "don\u2019t", "keep it.", "deny", "No thanks", "oh no"]
)
def test_a_clear_no(said: str) -> None:
    assert answer_of(said) is False


@pytest.mark.parametrize(
    "said", ["yes please delete TASK-0003 too", "not sure", "", "please", "list my tasks", "no way"]
)
def test_anything_else_is_no_answer(said: str) -> None:
    assert answer_of(said) is None


def test_the_waiting_sentence_names_the_task() -> None:
    asked = {"tool": "delete_task", "task_id": "TASK-0002", "title": "Buy milk"}
    assert waiting_sentence(asked) == (
        'Deleting TASK-0002 "Buy milk" is waiting for your answer:'
        " say yes to delete it or no to keep it."
    )
    change = {"tool": "update_task", "task_id": "TASK-0003", "title": "Rent"}
    assert waiting_sentence(change).startswith('Changing TASK-0003 "Rent" is waiting')
