"""The offline engine: intents from everyday English, tool round-trips, replies and streaming."""

from __future__ import annotations

import json
import statistics
import time
from datetime import date
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from models.offline import OfflineChatModel
from tools.schemas import MUTATING_TOOLS, TOOL_ARGS, GetTaskArgs, tool_definition

TODAY = date(2026, 11, 22)  # a Sunday
ALL_TOOLS = [tool_definition(name) for name in TOOL_ARGS]
READ_TOOLS = [tool_definition(name) for name in ("list_tasks", "get_task", "task_summary")]
LOOKUP_ID = "TASK-0042"


def engine(tools: list[Any] | None = None) -> Any:
    return OfflineChatModel(today=TODAY).bind_tools(ALL_TOOLS if tools is None else tools)


def task(number: int, title: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"TASK-{number:04d}",
        "title": title,
        "description": "",
        "priority": "normal",
        "status": "pending",
        "due_date": None,
        "tags": [],
        "created_at": "2026-11-20T09:00:00+00:00",
        "updated_at": "2026-11-20T09:00:00+00:00",
        "completed_at": None,
    }
    data.update(fields)
    return data


def result(call: ToolCall, payload: dict[str, Any]) -> ToolMessage:
    return ToolMessage(
        content=json.dumps(payload),
        tool_call_id=str(call["id"]),
        name=call["name"],
        status="success" if payload.get("ok") else "error",
    )


def only_call(message: AIMessage) -> ToolCall:
    assert len(message.tool_calls) == 1, message
    call = message.tool_calls[0]
    assert call["type"] == "tool_call"
    assert str(call["id"]).startswith("call_") and len(str(call["id"])) == 29
    # Whatever the engine emits must pass the tool's own argument model.
    TOOL_ARGS[call["name"]].model_validate(call["args"])
    return call


async def act(text: str, history: list[BaseMessage] | None = None) -> tuple[ToolCall, list[Any]]:
    """Send `text`; when the engine looks a title up, answer with one match and continue."""
    model = engine()
    messages: list[BaseMessage] = [SystemMessage("system prompt"), *(history or [])]
    messages.append(HumanMessage(text))
    reply = await model.ainvoke(messages)
    call = only_call(reply)
    lookups: list[Any] = []
    if call["name"] == "list_tasks" and set(call["args"]) == {"text"}:
        follow_up = await model.ainvoke(
            [*messages, reply, result(call, {"ok": True, "count": 1, "tasks": [task(42, "X")]})]
        )
        if follow_up.tool_calls:
            lookups.append(call["args"]["text"])
            call = only_call(follow_up)
    return call, lookups


# --------------------------------------------------------------------------- phrasings

WRITES: list[tuple[str, str, dict[str, Any], str | None]] = [
    # (phrase, tool, expected args subset, title words looked up first)
    (
        "Create a high-priority task for the quarterly review due next Friday",
        "create_task",
        {"title": "Quarterly review", "priority": "high", "due_date": "2026-11-27"},
        None,
    ),
    (
        "remind me to call mom tomorrow",
        "create_task",
        {"title": "Call mom", "due_date": "2026-11-23"},
        None,
    ),
    ("add buy milk to my list", "create_task", {"title": "Buy milk"}, None),
    ("new task: write report", "create_task", {"title": "Write report"}, None),
    (
        "Create an urgent task to fix the login bug by Dec 3",
        "create_task",
        {"title": "Fix the login bug", "priority": "urgent", "due_date": "2026-12-03"},
        None,
    ),
    (
        "add water the plants whenever #home",
        "create_task",
        {"title": "Water the plants", "priority": "low", "tags": ["home"]},
        None,
    ),
    (
        "I need to renew my passport in 2 weeks",
        "create_task",
        {"title": "Renew my passport", "due_date": "2026-12-06"},
        None,
    ),
    (
        "schedule dentist appointment for next friday",
        "create_task",
        {"title": "Dentist appointment", "due_date": "2026-11-27"},
        None,
    ),
    (
        "create a low priority task to clean the garage",
        "create_task",
        {"title": "Clean the garage", "priority": "low"},
        None,
    ),
    (
        'Create task "Email Bob" with high priority due 2026-12-24 #work',
        "create_task",
        {"title": "Email Bob", "priority": "high", "due_date": "2026-12-24", "tags": ["work"]},
        None,
    ),
    (
        "todo: taxes by end of month",
        "create_task",
        {"title": "Taxes", "due_date": "2026-11-30"},
        None,
    ),
    (
        "add an important task to book flights in 3 days",
        "create_task",
        {"title": "Book flights", "priority": "high", "due_date": "2026-11-25"},
        None,
    ),
    (
        "don't forget to pay rent on Friday",
        "create_task",
        {"title": "Pay rent", "due_date": "2026-11-27"},
        None,
    ),
    ("please add call the bank tomorrow", "create_task", {"title": "Call the bank"}, None),
    (
        "create a task called Plan offsite tagged work and planning",
        "create_task",
        {"title": "Plan offsite", "tags": ["work", "planning"]},
        None,
    ),
    (
        "make a task to review the budget due 12/15",
        "create_task",
        {"title": "Review the budget", "due_date": "2026-12-15"},
        None,
    ),
    ("could you add buy milk to my list?", "create_task", {"title": "Buy milk"}, None),
    ("remind me about the team lunch on Dec 3rd", "create_task", {"title": "Team lunch"}, None),
    # updates
    (
        "rename TASK-0002 to Budget draft",
        "update_task",
        {"task_id": "TASK-0002", "title": "Budget draft"},
        None,
    ),
    (
        "set the quarterly review to urgent",
        "update_task",
        {"task_id": LOOKUP_ID, "priority": "urgent"},
        "quarterly review",
    ),
    (
        "change the due date of TASK-0001 to Dec 3",
        "update_task",
        {"task_id": "TASK-0001", "due_date": "2026-12-03"},
        None,
    ),
    ("start TASK-0004", "update_task", {"task_id": "TASK-0004", "status": "in_progress"}, None),
    (
        "I'm working on the slides",
        "update_task",
        {"task_id": LOOKUP_ID, "status": "in_progress"},
        "slides",
    ),
    (
        "set TASK-0001 priority to low",
        "update_task",
        {"task_id": "TASK-0001", "priority": "low"},
        None,
    ),
    (
        "change TASK-0002's priority to high",
        "update_task",
        {"task_id": "TASK-0002", "priority": "high"},
        None,
    ),
    (
        "mark #3 as in progress",
        "update_task",
        {"task_id": "TASK-0003", "status": "in_progress"},
        None,
    ),
    ("reopen TASK-0003", "update_task", {"task_id": "TASK-0003", "status": "pending"}, None),
    (
        "reschedule task 4 for tomorrow",
        "update_task",
        {"task_id": "TASK-0004", "due_date": "2026-11-23"},
        None,
    ),
    (
        "push the dentist appointment back to next week",
        "update_task",
        {"task_id": LOOKUP_ID, "due_date": "2026-11-23"},
        "dentist appointment",
    ),
    (
        "make the report high priority",
        "update_task",
        {"task_id": LOOKUP_ID, "priority": "high"},
        "report",
    ),
    (
        "tag TASK-0001 with work, errands",
        "update_task",
        {"task_id": "TASK-0001", "tags": ["work", "errands"]},
        None,
    ),
    (
        "add a note to TASK-0001: call before 5pm",
        "update_task",
        {"task_id": "TASK-0001", "description": "call before 5pm"},
        None,
    ),
    (
        "postpone TASK-0006 to Dec 10",
        "update_task",
        {"task_id": "TASK-0006", "due_date": "2026-12-10"},
        None,
    ),
    ("prioritize task 8", "update_task", {"task_id": "TASK-0008", "priority": "high"}, None),
    (
        "TASK-0002 is due next friday",
        "update_task",
        {"task_id": "TASK-0002", "due_date": "2026-11-27"},
        None,
    ),
    (
        "Please create a task: Prepare slides for Monday's meeting",
        "create_task",
        {"title": "Prepare slides for Monday's meeting", "due_date": None},
        None,
    ),
    (
        "update TASK-0004 status to in progress",
        "update_task",
        {"task_id": "TASK-0004", "status": "in_progress"},
        None,
    ),
    # completion
    ("mark TASK-0003 done", "complete_task", {"task_id": "TASK-0003"}, None),
    ("complete task 3", "complete_task", {"task_id": "TASK-0003"}, None),
    ("I finished the report", "complete_task", {"task_id": LOOKUP_ID}, "report"),
    ("check off the grocery task", "complete_task", {"task_id": LOOKUP_ID}, "grocery"),
    ("TASK-0003 is done", "complete_task", {"task_id": "TASK-0003"}, None),
    ("done with task 3", "complete_task", {"task_id": "TASK-0003"}, None),
    ("can you mark TASK-0003 done?", "complete_task", {"task_id": "TASK-0003"}, None),
    ("I've completed #7", "complete_task", {"task_id": "TASK-0007"}, None),
    # deletion
    ("delete TASK-0002", "delete_task", {"task_id": "TASK-0002"}, None),
    ("remove the grocery task", "delete_task", {"task_id": LOOKUP_ID}, "grocery"),
    ("get rid of task 5", "delete_task", {"task_id": "TASK-0005"}, None),
    ("please delete TASK-0010", "delete_task", {"task_id": "TASK-0010"}, None),
]

READS: list[tuple[str, str, dict[str, Any]]] = [
    ("list my tasks", "list_tasks", {}),
    ("show my tasks", "list_tasks", {}),
    ("what's overdue?", "list_tasks", {"overdue": True}),
    ("show my high priority tasks", "list_tasks", {"priority": "high"}),
    (
        "pending tasks due this week",  # the whole week, Monday to today (a Sunday)
        "list_tasks",
        {"status": "pending", "due_after": "2026-11-16", "due_before": "2026-11-22"},
    ),
    ("what's on my plate", "list_tasks", {}),
    ("tasks about report", "list_tasks", {"text": "report"}),
    ("completed tasks", "list_tasks", {"status": "completed"}),
    (
        "what do I have due tomorrow",
        "list_tasks",
        {"due_after": "2026-11-23", "due_before": "2026-11-23"},
    ),
    ("show me urgent tasks", "list_tasks", {"priority": "urgent"}),
    ("which tasks are in progress?", "list_tasks", {"status": "in_progress"}),
    ("tasks due next week", "list_tasks", {"due_after": "2026-11-23", "due_before": "2026-11-29"}),
    ("anything due before Dec 1?", "list_tasks", {"due_before": "2026-12-01"}),
    ("show my top 5 urgent tasks", "list_tasks", {"limit": 5, "priority": "urgent"}),
    ("search for budget", "list_tasks", {"text": "budget"}),
    ("what's due today", "list_tasks", {"due_after": "2026-11-22", "due_before": "2026-11-22"}),
    ("did I finish the report?", "list_tasks", {"text": "report"}),
    ("show TASK-0003", "get_task", {"task_id": "TASK-0003"}),
    ("is TASK-0003 done?", "get_task", {"task_id": "TASK-0003"}),
    ("TASK-0007", "get_task", {"task_id": "TASK-0007"}),
    ("give me a summary", "task_summary", {}),
    ("how am I doing?", "task_summary", {}),
    ("analyze my tasks", "task_summary", {}),
    ("stats", "task_summary", {}),
    ("how many tasks do I have?", "task_summary", {}),
]

NO_WRITES = [
    "should I delete my old tasks?",
    "how do I create a task?",
    "don't create anything yet",
    "what does urgent mean?",
    "can you delete tasks?",
    "thanks!",
    "can you create tasks?",
    "delete all completed tasks",
    "add buy milk?",
    "what is a priority?",
    "hello",
    "help",
    "what can you do?",
    "never mind",
    "don't delete anything",
    "sing me a song",
    "how do I delete a task?",
    "create a task",
    "should I mark TASK-0003 done?",
    "is it a good idea to remove the report?",
    "what are the priorities?",
    "thank you so much",
    "delete it",  # nothing was mentioned before, so there is no "it"
    "yes",
]


@pytest.mark.parametrize(
    ("text", "tool_name", "expected", "lookup"), WRITES, ids=[w[0] for w in WRITES]
)
async def test_write_phrasings(
    text: str, tool_name: str, expected: dict[str, Any], lookup: str | None
) -> None:
    call, lookups = await act(text)
    assert call["name"] == tool_name
    assert {k: call["args"].get(k) for k in expected} == expected
    assert lookups == ([lookup] if lookup else [])


@pytest.mark.parametrize(("text", "tool_name", "expected"), READS, ids=[r[0] for r in READS])
async def test_read_phrasings(text: str, tool_name: str, expected: dict[str, Any]) -> None:
    reply = await engine().ainvoke([HumanMessage(text)])
    call = only_call(reply)
    assert call["name"] == tool_name
    assert call["args"] == expected


@pytest.mark.parametrize("text", NO_WRITES)
async def test_questions_and_chit_chat_never_write(text: str) -> None:
    reply = await engine().ainvoke([HumanMessage(text)])
    assert not [c for c in reply.tool_calls if c["name"] in MUTATING_TOOLS]
    assert reply.tool_calls or reply.content.strip()


def test_phrasing_coverage_is_broad() -> None:
    assert len(WRITES) + len(READS) + len(NO_WRITES) >= 60


# --------------------------------------------------------------------------- text answers


async def test_help_lists_examples_without_tools() -> None:
    reply = await engine().ainvoke([HumanMessage("help")])
    assert reply.tool_calls == []
    assert "offline engine" in reply.content
    assert reply.content.count("\n- ") >= 4


async def test_unknown_request_is_honest_and_suggests_phrasings() -> None:
    reply = await engine().ainvoke([HumanMessage("sing me a song")])
    assert reply.tool_calls == []
    assert "built-in offline engine" in reply.content
    assert '"sing me a song"' in reply.content
    assert 3 <= reply.content.count("\n- ") <= 4


async def test_should_i_delete_gives_advice() -> None:
    reply = await engine().ainvoke([HumanMessage("should I delete my old tasks?")])
    assert "your call" in reply.content and "won't change anything" in reply.content


async def test_explains_priorities() -> None:
    reply = await engine().ainvoke([HumanMessage("what does urgent mean?")])
    assert reply.content.startswith("Urgent is the highest priority")


# --------------------------------------------------------------------------- title look-ups


async def test_lookup_with_one_match_continues_with_the_action() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("mark the quarterly review done")]
    lookup = await model.ainvoke(messages)
    call = only_call(lookup)
    assert call["name"] == "list_tasks" and call["args"] == {"text": "quarterly review"}
    matches = {"ok": True, "count": 1, "tasks": [task(3, "Quarterly review")]}
    messages += [lookup, result(call, matches)]
    action = await model.ainvoke(messages)
    assert only_call(action)["name"] == "complete_task"
    assert action.tool_calls[0]["args"] == {"task_id": "TASK-0003"}
    done = {"ok": True, "task": task(3, "Quarterly review", status="completed")}
    messages += [action, result(action.tool_calls[0], done)]
    final = await model.ainvoke(messages)
    assert final.tool_calls == []
    assert final.content == 'Marked TASK-0003 "Quarterly review" as completed.'


async def test_lookup_with_several_matches_asks_which_one() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("delete the report")]
    lookup = await model.ainvoke(messages)
    matches = {
        "ok": True,
        "count": 2,
        "tasks": [task(3, "Write report"), task(5, "Report to Bob", due_date="2026-11-20")],
    }
    messages += [lookup, result(only_call(lookup), matches)]
    question = await model.ainvoke(messages)
    assert question.tool_calls == []
    assert question.content == (
        'I found 2 tasks matching "report":\n'
        '- TASK-0003 "Write report" (normal priority)\n'
        '- TASK-0005 "Report to Bob" (normal priority, due Fri 2026-11-20, overdue)\n'
        'Which one should I delete? Reply with its id, for example "TASK-0003".'
    )
    # Answering with an id carries the original request forward.
    messages += [question, HumanMessage("TASK-0005")]
    action = await model.ainvoke(messages)
    assert only_call(action)["name"] == "delete_task"
    assert action.tool_calls[0]["args"] == {"task_id": "TASK-0005"}


async def test_lookup_with_no_match_retries_once_with_trimmed_words_then_says_so() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("complete the grocery task")]
    lookup = await model.ainvoke(messages)
    assert only_call(lookup)["args"] == {"text": "grocery"}
    messages += [lookup, result(only_call(lookup), {"ok": True, "count": 0, "tasks": []})]
    retry = await model.ainvoke(messages)
    assert only_call(retry)["args"] == {"text": "grocer"}
    messages += [retry, result(only_call(retry), {"ok": True, "count": 0, "tasks": []})]
    reply = await model.ainvoke(messages)
    assert reply.tool_calls == []
    assert reply.content.startswith('I couldn\'t find a task matching "grocery"')


async def test_trimmed_retry_finds_the_plural_title() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("remove the grocery task")]
    lookup = await model.ainvoke(messages)
    messages += [lookup, result(only_call(lookup), {"ok": True, "count": 0, "tasks": []})]
    retry = await model.ainvoke(messages)
    found = {"ok": True, "count": 1, "tasks": [task(6, "Buy groceries")]}
    messages += [retry, result(only_call(retry), found)]
    action = await model.ainvoke(messages)
    assert (only_call(action)["name"], action.tool_calls[0]["args"]) == (
        "delete_task",
        {"task_id": "TASK-0006"},
    )


async def test_lookup_prefers_an_exact_title_and_the_open_task_when_completing() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("I finished the report")]
    lookup = await model.ainvoke(messages)
    matches = {
        "ok": True,
        "count": 2,
        "tasks": [task(3, "Report draft", status="completed"), task(9, "Report for Bob")],
    }
    messages += [lookup, result(only_call(lookup), matches)]
    action = await model.ainvoke(messages)
    assert action.tool_calls[0]["args"] == {"task_id": "TASK-0009"}


async def test_lookup_error_is_explained() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("remove the grocery task")]
    lookup = await model.ainvoke(messages)
    messages += [lookup, result(only_call(lookup), {"ok": False, "error": "Database is locked."})]
    reply = await model.ainvoke(messages)
    assert reply.content == "I couldn't do that: Database is locked."


# --------------------------------------------------------------------------- "it"


async def test_it_means_the_task_most_recently_mentioned() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("add buy milk to my list")]
    create = await model.ainvoke(messages)
    messages += [create, result(only_call(create), {"ok": True, "task": task(12, "Buy milk")})]
    messages += [await model.ainvoke(messages), HumanMessage("move it to next Monday")]
    move = await model.ainvoke(messages)
    assert only_call(move)["name"] == "update_task"
    assert move.tool_calls[0]["args"] == {"task_id": "TASK-0012", "due_date": "2026-11-23"}


@pytest.mark.parametrize(
    ("text", "tool_name"),
    [
        ("make it urgent", "update_task"),
        ("delete that one", "delete_task"),
        ("tell me about it", "get_task"),
    ],
)
async def test_it_reads_ids_from_tool_results(text: str, tool_name: str) -> None:
    history: list[BaseMessage] = [
        HumanMessage("show TASK-0004"),
        AIMessage(
            "", tool_calls=[ToolCall(name="get_task", args={"task_id": "TASK-0004"}, id="call_a")]
        ),
        ToolMessage(json.dumps({"ok": True, "task": task(4, "Slides")}), tool_call_id="call_a"),
    ]
    call, _ = await act(text, history)
    assert call["name"] == tool_name
    assert call["args"]["task_id"] == "TASK-0004"


async def test_it_is_ambiguous_after_a_list() -> None:
    listing = {"ok": True, "count": 2, "tasks": [task(1, "A"), task(2, "B")]}
    history = [
        *round_trip("list my tasks", "list_tasks", {}, listing),
        AIMessage("You have 2 tasks"),
    ]
    reply = await engine().ainvoke([*history, HumanMessage("complete it")])
    assert reply.tool_calls == []
    assert reply.content.startswith("Which task do you mean?")
    # Naming the task afterwards carries the request forward.
    answer = await engine().ainvoke(
        [*history, HumanMessage("complete it"), reply, HumanMessage("#2")]
    )
    assert (only_call(answer)["name"], answer.tool_calls[0]["args"]) == (
        "complete_task",
        {"task_id": "TASK-0002"},
    )


async def test_example_ids_in_replies_are_not_it() -> None:
    model = engine()
    messages: list[BaseMessage] = [HumanMessage("can you delete tasks?")]
    explanation = await model.ainvoke(messages)
    assert "TASK-0002" in explanation.content  # an example, not a task of the user's
    reply = await model.ainvoke([*messages, explanation, HumanMessage("ok delete it")])
    assert reply.tool_calls == []
    assert reply.content.startswith("Which task do you mean?")


# --------------------------------------------------------------------------- replies from results


def round_trip(
    text: str, name: str, args: dict[str, Any], payload: dict[str, Any]
) -> list[BaseMessage]:
    call = ToolCall(name=name, args=args, id="call_x", type="tool_call")
    return [HumanMessage(text), AIMessage("", tool_calls=[call]), result(call, payload)]


@pytest.mark.parametrize(
    ("name", "args", "payload", "expected"),
    [
        (
            "create_task",
            {"title": "Quarterly review"},
            {
                "ok": True,
                "task": task(1, "Quarterly review", priority="high", due_date="2026-11-27"),
            },
            'Created TASK-0001 "Quarterly review" (high priority, due Fri 2026-11-27).',
        ),
        (
            "list_tasks",
            {},
            {
                "ok": True,
                "count": 3,
                "tasks": [
                    task(1, "Quarterly review", priority="high", due_date="2026-11-27"),
                    task(2, "Taxes", status="in_progress", due_date="2026-11-01", tags=["home"]),
                ],
            },
            "You have 3 tasks:\n"
            '- TASK-0001 "Quarterly review" (high priority, due Fri 2026-11-27)\n'
            '- TASK-0002 "Taxes" (in progress, normal priority, due Sun 2026-11-01, overdue, '
            "tagged #home)\n"
            "(showing the first 2)",
        ),
        (
            "list_tasks",
            {"overdue": True},
            {"ok": True, "count": 0, "tasks": []},
            "Nothing is overdue.",
        ),
        (
            "list_tasks",
            {"priority": "high", "status": "pending"},
            {"ok": True, "count": 0, "tasks": []},
            "You have no high-priority pending tasks.",
        ),
        (
            "list_tasks",
            {"text": "report"},
            {"ok": True, "count": 1, "tasks": [task(3, "Write report")]},
            'You have 1 task matching "report":\n- TASK-0003 "Write report" (normal priority)',
        ),
        (
            "get_task",
            {"task_id": "TASK-0003"},
            {"ok": True, "task": task(3, "Write report", description="Two pages.")},
            'TASK-0003 "Write report" (pending, normal priority). Notes: Two pages.',
        ),
        (
            "update_task",
            {"task_id": "TASK-0002", "priority": "urgent"},
            {
                "ok": True,
                "task": task(2, "Budget", priority="urgent", due_date="2026-11-23"),
                "changed": ["priority", "due_date"],
            },
            'Updated TASK-0002 "Budget": priority is now urgent; due date is now Mon 2026-11-23.',
        ),
        (
            "update_task",
            {"task_id": "TASK-0002", "priority": "normal"},
            {"ok": True, "task": task(2, "Budget"), "changed": []},
            'TASK-0002 "Budget" already had those values, so nothing changed.',
        ),
        (
            "complete_task",
            {"task_id": "TASK-0003"},
            {"ok": True, "task": task(3, "Write report", status="completed")},
            'Marked TASK-0003 "Write report" as completed.',
        ),
        (
            "delete_task",
            {"task_id": "TASK-0002"},
            {"ok": True, "deleted": {"id": "TASK-0002", "title": "Groceries"}},
            'Deleted TASK-0002 "Groceries".',
        ),
        (
            "get_task",
            {"task_id": "TASK-0009"},
            {"ok": False, "error": "Task TASK-0009 not found."},
            "I couldn't do that: Task TASK-0009 not found.",
        ),
        (
            "delete_task",
            {"task_id": "TASK-0002"},
            {"ok": False, "error": "The user rejected deleting TASK-0002; it was kept."},
            "I did not delete TASK-0002: The user rejected deleting TASK-0002; it was kept.",
        ),
        (
            "task_summary",
            {},
            {
                "ok": True,
                "total": 4,
                "by_status": {"pending": 2, "in_progress": 1, "completed": 1},
                "by_priority": {"low": 1, "normal": 2, "high": 1, "urgent": 0},
                "overdue": 1,
                "overdue_tasks": [task(5, "Report to Bob", due_date="2026-11-20")],
                "due_this_week": 1,
                "due_this_week_tasks": [task(1, "Review", priority="high", due_date="2026-11-22")],
            },
            "You have 4 tasks: 2 pending, 1 in progress, 1 completed (25% done).\n"
            "By priority: 1 high, 2 normal, 1 low.\n"
            "Overdue: 1.\n"
            '- TASK-0005 "Report to Bob" (normal priority, due Fri 2026-11-20, overdue)\n'
            "Due this week: 1.\n"
            '- TASK-0001 "Review" (high priority, due Sun 2026-11-22)\n'
            "I'd start with the overdue ones.",
        ),
    ],
)
async def test_reply_text_from_tool_results(
    name: str, args: dict[str, Any], payload: dict[str, Any], expected: str
) -> None:
    reply = await engine().ainvoke(round_trip("whatever was asked", name, args, payload))
    assert reply.tool_calls == []
    assert reply.content == expected


async def test_non_json_tool_output_is_reported_as_an_error() -> None:
    call = ToolCall(name="list_tasks", args={}, id="call_y", type="tool_call")
    messages = [
        HumanMessage("list my tasks"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("Error: store unavailable", tool_call_id="call_y"),
    ]
    reply = await engine().ainvoke(messages)
    assert reply.content == "I couldn't do that: Error: store unavailable"


# --------------------------------------------------------------------------- bind_tools


async def test_read_only_binding_refuses_to_delete() -> None:
    reply = await engine(READ_TOOLS).ainvoke([HumanMessage("delete TASK-0001")])
    assert reply.tool_calls == []
    assert reply.content == (
        "I'm not allowed to delete TASK-0001 here: the delete_task tool isn't available to me in "
        "this conversation, so I didn't do it."
    )


async def test_read_only_binding_does_not_even_look_up_a_title_to_change() -> None:
    reply = await engine(READ_TOOLS).ainvoke([HumanMessage("mark the report done")])
    assert reply.tool_calls == []
    assert "not allowed" in reply.content


async def test_read_only_binding_still_reads() -> None:
    reply = await engine(READ_TOOLS).ainvoke([HumanMessage("what's overdue?")])
    assert only_call(reply)["name"] == "list_tasks"


async def test_without_list_tasks_a_title_needs_an_id() -> None:
    reply = await engine([tool_definition("complete_task")]).ainvoke(
        [HumanMessage("finish the report")]
    )
    assert reply.tool_calls == []
    assert "give me the task id" in reply.content


def test_bind_tools_accepts_dicts_base_tools_and_pydantic_classes() -> None:
    @tool
    def task_summary() -> str:
        """Summarise."""
        return ""

    bound = OfflineChatModel().bind_tools(
        [tool_definition("list_tasks"), task_summary, GetTaskArgs, {"name": "delete_task"}]
    )
    assert isinstance(bound, OfflineChatModel)
    assert bound.allowed_tools == ("list_tasks", "task_summary", "get_task", "delete_task")
    assert OfflineChatModel().allowed_tools is None


def test_bound_tools_passed_at_call_time_are_honoured() -> None:
    model = OfflineChatModel(today=TODAY).bind(tools=READ_TOOLS)
    reply = model.invoke([HumanMessage("delete TASK-0001")])
    assert reply.tool_calls == []


# --------------------------------------------------------------------------- streaming


async def test_text_streams_in_several_chunks_that_add_up_to_the_invoke_reply() -> None:
    model = engine()
    messages = [HumanMessage("help")]
    chunks = [chunk async for chunk in model.astream(messages)]
    invoked = await model.ainvoke(messages)
    text_chunks = [c for c in chunks if c.content]
    assert len(text_chunks) > 10
    assert "".join(str(c.content) for c in chunks) == invoked.content
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.response_metadata["model_name"] == "offline-engine"
    assert merged.usage_metadata == invoked.usage_metadata


def test_sync_stream_matches_invoke() -> None:
    model = engine()
    messages = [HumanMessage("what does urgent mean?")]
    chunks = list(model.stream(messages))
    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == model.invoke(messages).content


async def test_tool_calls_survive_streaming() -> None:
    model = engine()
    messages = [HumanMessage("remind me to call mom tomorrow")]
    chunks = [chunk async for chunk in model.astream(messages)]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("create_task", {"title": "Call mom", "due_date": "2026-11-23"})
    ]


async def test_ainvoke_through_the_streaming_path_returns_tool_calls() -> None:
    reply = await engine().ainvoke([HumanMessage("delete TASK-0002")], stream=True)
    assert isinstance(reply, AIMessage)
    call = only_call(reply)
    assert (call["name"], call["args"]) == ("delete_task", {"task_id": "TASK-0002"})
    assert reply.response_metadata["model_name"] == "offline-engine"
    assert reply.usage_metadata is not None and reply.usage_metadata["total_tokens"] > 0


async def test_tokens_reach_callback_handlers() -> None:
    class Recorder(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        async def on_llm_new_token(
            self, token: str | list[str | dict[str, Any]], **kwargs: Any
        ) -> None:
            self.tokens.append(str(token))

    recorder = Recorder()
    model = engine()
    reply = await model.ainvoke(
        [HumanMessage("thanks!")], config={"callbacks": [recorder]}, stream=True
    )
    assert len([t for t in recorder.tokens if t]) > 3
    assert "".join(recorder.tokens) == reply.content


async def test_langgraph_streams_tokens_and_keeps_tool_calls() -> None:
    model = engine()

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    graph = builder.compile()

    streamed: list[BaseMessage] = []
    async for item in graph.astream({"messages": [HumanMessage("help")]}, stream_mode="messages"):
        chunk, _ = item
        assert isinstance(chunk, AIMessageChunk)
        streamed.append(chunk)
    assert len([c for c in streamed if c.content]) > 10
    final = await graph.ainvoke({"messages": [HumanMessage("help")]})
    assert "".join(str(c.content) for c in streamed) == final["messages"][-1].content

    last: Any = None
    async for mode, payload in graph.astream(
        {"messages": [HumanMessage("mark TASK-0003 done")]}, stream_mode=["messages", "values"]
    ):
        if mode == "values":
            assert isinstance(payload, dict)
            last = payload["messages"][-1]
    assert isinstance(last, AIMessage)
    assert [(c["name"], c["args"]) for c in last.tool_calls] == [
        ("complete_task", {"task_id": "TASK-0003"})
    ]


# --------------------------------------------------------------------------- determinism & metadata


async def test_same_conversation_gives_the_same_reply() -> None:
    conversations: list[list[BaseMessage]] = [
        [HumanMessage("Create a high-priority task for the quarterly review due next Friday")],
        [HumanMessage("set the quarterly review to urgent")],
        [HumanMessage("sing me a song")],
        round_trip(
            "list my tasks", "list_tasks", {}, {"ok": True, "count": 1, "tasks": [task(1, "A")]}
        ),
    ]
    for messages in conversations:
        first = await engine().ainvoke(messages)
        second = await OfflineChatModel(today=TODAY).bind_tools(ALL_TOOLS).ainvoke(messages)
        assert first.content == second.content
        assert [(c["name"], c["args"]) for c in first.tool_calls] == [
            (c["name"], c["args"]) for c in second.tool_calls
        ]


async def test_metadata_on_invoke() -> None:
    reply = await engine().ainvoke([HumanMessage("list my tasks")])
    assert reply.response_metadata["model_name"] == "offline-engine"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == 3
    assert reply.usage_metadata["total_tokens"] == (
        reply.usage_metadata["input_tokens"] + reply.usage_metadata["output_tokens"]
    )
    assert OfflineChatModel()._llm_type == "offline-engine"


async def test_today_defaults_to_the_call_date() -> None:
    reply = await OfflineChatModel().ainvoke([HumanMessage("remind me to stretch tomorrow")])
    due = date.fromisoformat(reply.tool_calls[0]["args"]["due_date"])
    assert (due - date.today()).days == 1


async def test_hosted_pacing_waits_longer_for_the_first_token() -> None:
    paced = OfflineChatModel(today=TODAY, token_delay_s=0.01, first_token_delay_s=0.25)
    started = time.perf_counter()
    arrivals: list[float] = []
    async for _ in paced.astream([HumanMessage(content="hello there")]):
        arrivals.append(time.perf_counter() - started)
    assert len(arrivals) > 3
    assert arrivals[0] >= 0.25
    # Paced against a schedule: chunk i is due 0.25 s + i * 0.01 s after the call.
    for index, arrival in enumerate(arrivals):
        assert arrival >= 0.25 + index * 0.01 - 0.002
    assert statistics.median(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) < 0.1
