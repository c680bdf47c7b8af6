"""The claim check's reading of answers: real claims are caught, honest wording passes.

The corpus is every reply the offline engine can word (models/offline/replies.py): after a
successful tool result each must pass unchanged, and after a failed one none may claim anything.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, get_args

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from graph.claims import Write, claims_in, honest_answer, turn_writes, unsupported_claims
from models.offline.intents import TextIntent, TextKind
from models.offline.replies import (
    ToolOutcome,
    ask_for_id_reply,
    help_text,
    lookup_many_reply,
    lookup_none_reply,
    need_task_reply,
    not_allowed_reply,
    results_reply,
    text_reply,
)

TODAY = date(2026, 12, 7)
# Titles full of claim words: a listing or confirmation quotes them, so they claim nothing.
TASKS: list[dict[str, Any]] = [
    {"id": "TASK-0001", "title": "I deleted the old files", "priority": "high",
     "status": "pending", "due_date": "2026-12-01", "tags": ["work"]},
    {"id": "TASK-0002", "title": "Has been updated draft", "priority": "urgent",
     "status": "in_progress", "due_date": "2026-12-09", "tags": []},
    {"id": "TASK-0003", "title": "Buy milk", "priority": "low", "status": "completed",
     "due_date": None, "tags": ["home"]},
]  # fmt: skip
WRITE_TOOLS = ("create_task", "update_task", "complete_task", "delete_task")


def _ok_outcomes() -> list[ToolOutcome]:
    one = TASKS[0]
    outcomes = [
        ToolOutcome("create_task", {"title": one["title"]}, {"ok": True, "task": one}),
        ToolOutcome("complete_task", {"task_id": "TASK-0003"}, {"ok": True, "task": TASKS[2]}),
        ToolOutcome(
            "delete_task",
            {"task_id": "TASK-0001"},
            {"ok": True, "deleted": {"id": "TASK-0001", "title": one["title"]}},
        ),
        ToolOutcome("get_task", {"task_id": "TASK-0002"}, {"ok": True, "task": TASKS[1]}),
        ToolOutcome(
            "update_task",
            {"task_id": "TASK-0002", "priority": "urgent"},
            {"ok": True, "task": TASKS[1], "changed": []},
        ),
        ToolOutcome("task_summary", {}, {"ok": True, "total": 0}),
        ToolOutcome(
            "task_summary",
            {},
            {
                "ok": True,
                "total": 3,
                "by_status": {"pending": 1, "in_progress": 1, "completed": 1},
                "by_priority": {"urgent": 1, "high": 1, "low": 1},
                "overdue": 1,
                "overdue_tasks": [TASKS[0]],
                "due_this_week": 1,
                "due_this_week_tasks": [TASKS[1]],
            },
        ),
        ToolOutcome(
            "task_summary",
            {},
            {"ok": True, "total": 1, "by_status": {"completed": 1}, "overdue": 0},
        ),
    ]
    for field in ("title", "priority", "due_date", "status", "tags", "description"):
        task = {**TASKS[1], "description": "notes"}
        outcomes.append(
            ToolOutcome(
                "update_task",
                {"task_id": "TASK-0002", field: task.get(field)},
                {"ok": True, "task": task, "changed": [field]},
            )
        )
    outcomes.append(
        ToolOutcome(
            "update_task",
            {"task_id": "TASK-0002", "due_date": None},
            {"ok": True, "task": {**TASKS[1], "due_date": None}, "changed": ["due_date"]},
        )
    )
    filters: list[dict[str, Any]] = [
        {},
        {"overdue": True},
        {"priority": "high", "status": "completed"},
        {"due_before": "2026-12-13", "due_after": "2026-12-07", "text": "report"},
        {"due_before": "2026-12-13"},
        {"due_after": "2026-12-07"},
    ]
    for args in filters:
        outcomes.append(ToolOutcome("list_tasks", args, {"ok": True, "count": 0, "tasks": []}))
        outcomes.append(ToolOutcome("list_tasks", args, {"ok": True, "count": 5, "tasks": TASKS}))
        outcomes.append(
            ToolOutcome("list_tasks", args, {"ok": True, "count": 1, "tasks": TASKS[2:]})
        )
    return outcomes


def _writes(outcomes: list[ToolOutcome]) -> list[Write]:
    messages: list[Any] = [HumanMessage("go")]
    for index, outcome in enumerate(outcomes):
        call = {"id": f"c{index}", "name": outcome.name, "args": outcome.args}
        messages.append(AIMessage("", tool_calls=[call]))
        messages.append(
            ToolMessage(json.dumps(outcome.payload), tool_call_id=f"c{index}", name=outcome.name)
        )
    return turn_writes(messages)


@pytest.mark.parametrize("outcome", _ok_outcomes(), ids=lambda o: o.name)
def test_every_offline_reply_after_a_successful_tool_passes_unchanged(outcome: ToolOutcome):
    reply = results_reply([outcome], TODAY)
    assert unsupported_claims(reply, _writes([outcome])) == [], reply


def test_a_reply_for_several_successful_writes_passes():
    outcomes = [o for o in _ok_outcomes() if o.name in WRITE_TOOLS]
    reply = results_reply(outcomes, TODAY)
    assert unsupported_claims(reply, _writes(outcomes)) == []


@pytest.mark.parametrize("tool", WRITE_TOOLS)
@pytest.mark.parametrize(
    "error",
    [
        "TASK-0160 not found.",
        "The user rejected this deletion.",
        "Permission denied: role read may not write.",
        "update_task timed out after 5s.",
    ],
)
def test_offline_replies_after_a_failed_write_claim_nothing(tool: str, error: str):
    outcome = ToolOutcome(tool, {"task_id": "TASK-0160"}, {"ok": False, "error": error})
    reply = results_reply([outcome], TODAY)
    assert claims_in(reply) == [], reply


@pytest.mark.parametrize("kind", get_args(TextKind))
@pytest.mark.parametrize("topic", ["", "delete_task", "update_task", "date:blursday", "priority:x"])
def test_offline_text_replies_claim_nothing(kind: str, topic: str):
    reply = text_reply(TextIntent(kind, topic))  # type: ignore[arg-type]
    assert claims_in(reply) == [], reply


@pytest.mark.parametrize("tool", [*WRITE_TOOLS, "get_task", "list_tasks"])
def test_offline_questions_and_refusals_claim_nothing(tool: str):
    for reply in (
        help_text(),
        need_task_reply(),
        not_allowed_reply(tool, "TASK-0002"),
        not_allowed_reply(tool),
        ask_for_id_reply("quarterly review"),
        lookup_none_reply(tool, "quarterly review"),
        lookup_many_reply(tool, "draft", TASKS, TODAY),
    ):
        assert claims_in(reply) == [], reply


# The answers a real small model gave in the outside evaluation (issue 11), and kin.
CLAIMS = [
    ("I updated the task's due date.", "change"),
    ("I deleted the task: TASK-0160", "delete"),
    ("The task has been deleted.", "delete"),
    ("I changed 3 task.", "change"),
    ("Deleted TASK-0160.", "delete"),
    ('<tool_response>{"ok": true, "deleted": {"id": "TASK-0160"}}</tool_response>', "fabricated"),
    ("Sure! I've marked TASK-0003 as complete.", "complete"),
    ("TASK-0003 is now marked as done.", "complete"),
    ("Its due date is now December 15.", "change"),
    ("I have successfully created the task 'Buy milk'.", "create"),
    ("Task TASK-0004 deleted successfully.", "delete"),
    ("TASK-0002 was deleted.", "delete"),
    ("Great news, I went ahead and removed it!", "delete"),
    ("Renamed TASK-0002 to Budget draft.", "change"),
    ("Your task has now been rescheduled to Friday.", "change"),
    ("We added it to your list.", "create"),
    ('Task deleted: "Buy a birthday card"', "delete"),
    ('Done: updated TASK-0001 "Renew Car Insurance" (urgent).', "change"),
    ("The task was created successfully.", "create"),
]
NOT_CLAIMS = [
    "I did not delete TASK-0002.",
    "I didn't change anything.",
    "Do you want me to delete TASK-0002?",
    "Should I mark it as done?",
    "I'll delete it once you approve.",
    "Once you approve, it will be deleted.",
    "I tried to delete it but the tool said not found.",
    "TASK-0003 Buy milk (completed)",
    "- TASK-0001 Pay rent (pending, due 2026-12-01)\n- TASK-0003 Buy milk (completed)",
    "You have 3 tasks: 1 pending, 0 in progress, 2 completed (67% done).",
    "Completed tasks:\n- TASK-0001 Pay rent",
    "TASK-0004 is now overdue.",
    "Your task was created on 2026-11-01.",
    "Nothing was changed.",
    "Sorry, no model is able to answer right now, so nothing was changed.",
    "If you want, I can update the due date.",
    "To delete a task, say which one; deleting needs your approval.",
]


@pytest.mark.parametrize(("answer", "kind"), CLAIMS)
def test_claims_without_a_write_are_caught(answer: str, kind: str):
    caught = unsupported_claims(answer, [])
    assert [claim.kind for claim in caught][:1] == [kind]


@pytest.mark.parametrize("answer", NOT_CLAIMS)
def test_negations_questions_plans_and_listings_are_not_claims(answer: str):
    assert claims_in(answer) == []


def test_a_claim_must_match_the_kind_and_the_named_task():
    updated = Write("update_task", True, ("TASK-0002",))
    deleted = Write("delete_task", True, ("TASK-0002",))
    assert unsupported_claims("I deleted TASK-0002.", [updated]) != []  # wrong kind
    assert unsupported_claims("I deleted TASK-0005.", [deleted]) != []  # wrong task
    assert unsupported_claims("I deleted TASK-0002.", [deleted]) == []
    assert unsupported_claims("I deleted it.", [deleted]) == []
    failed = Write("delete_task", False, ("TASK-0160",), "TASK-0160 not found.")
    assert unsupported_claims("TASK-0160 has been deleted.", [failed]) != []


def test_the_honest_answer_says_what_did_and_did_not_happen():
    claims = claims_in("I deleted TASK-0160.")
    assert honest_answer(claims, []) == (
        "I didn't change anything: no tool was called to do it in this turn."
    )
    failed = Write("delete_task", False, ("TASK-0160",), "TASK-0160 not found.")
    assert honest_answer(claims, [failed]) == (
        "I didn't change anything: the delete_task tool said: TASK-0160 not found."
    )
    updated = Write("update_task", True, ("TASK-0002",))
    assert honest_answer(claims, [updated]) == (
        "I only updated TASK-0002. I didn't delete anything else: no tool call did what the"
        " answer claimed."
    )


# What a user says to the offline engine in one thread, and the approval answers it needs.
OFFLINE_THREAD: list[tuple[str, bool | None]] = [
    ("Create a high-priority task for the quarterly review due next Friday", None),
    ("add buy milk to my list #home", None),
    ("remind me to call mom tomorrow", None),
    ("rename TASK-0002 to Buy oat milk", None),
    ("set TASK-0001 to urgent", None),
    ("move TASK-0003 to next Monday", None),
    ("start TASK-0003", None),
    ("mark TASK-0002 done", None),
    ("list my tasks", None),
    ("what's overdue?", None),
    ("completed tasks", None),
    ("give me a summary", None),
    ("show TASK-0001", None),
    ("delete TASK-0003", True),
    ("delete TASK-0001", False),
]


async def test_the_offline_engine_is_never_withdrawn_in_a_real_thread(open_engine):
    from graph.context import Context

    me = Context(user_id="alice", role="write")
    engine = await open_engine()
    thread = None
    for message, approve in OFFLINE_THREAD:
        result = await engine.run_turn(context=me, message=message, thread_id=thread)
        thread = result.thread_id
        if approve is not None:
            assert result.interrupt is not None, message
            result = await engine.run_turn(
                context=me, thread_id=thread, resume={"approved": approve}
            )
        assert result.model_used == "offline-engine"
        assert not result.message.startswith(("I didn't change anything", "I only ")), (
            message,
            result.message,
        )
    assert await engine.runner.services.tasks.get("alice", "TASK-0003") is None
    done = await engine.runner.services.tasks.get("alice", "TASK-0002")
    assert done is not None and done["status"] == "completed"
    first = await engine.runner.services.tasks.get("alice", "TASK-0001")
    assert first is not None and first["priority"] == "urgent"
