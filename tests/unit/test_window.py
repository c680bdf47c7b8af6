"""The model input budget: whole old turns go first, tool calls keep their results."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from graph.window import (
    MESSAGE_TOKENS,
    fit_chars,
    fit_tokens,
    message_chars,
    message_tokens,
    text_tokens,
)


def turn(n: int, user_chars: int, result_chars: int) -> list[BaseMessage]:
    call = {"name": "list_tasks", "args": {}, "id": f"call-{n}"}
    return [
        HumanMessage(f"{n}" + "u" * (user_chars - 1)),
        AIMessage("", tool_calls=[call]),
        ToolMessage("r" * result_chars, tool_call_id=f"call-{n}"),
        AIMessage(f"answer {n}"),
    ]


def size(messages: list[BaseMessage]) -> int:
    return sum(message_chars(m) for m in messages)


def paired(messages: list[BaseMessage]) -> bool:
    calls = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    results = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return calls == results


def test_messages_within_the_budget_are_left_alone() -> None:
    messages = turn(1, 100, 100) + turn(2, 100, 100)
    assert fit_chars(messages, 10_000) == messages


def test_oldest_whole_turns_go_first() -> None:
    messages = [m for n in range(6) for m in turn(n, 1000, 1000)]
    kept = fit_chars(messages, 5000)
    assert size(kept) <= 5000 and paired(kept)
    assert isinstance(kept[0], HumanMessage) and kept[-1] == messages[-1]
    assert [m.content[0] for m in kept if isinstance(m, HumanMessage)] == ["4", "5"]


def test_a_newest_turn_too_large_is_shortened_but_keeps_its_user_message_and_pairs() -> None:
    messages = turn(1, 500, 50) + [HumanMessage("9" * 3000)] + turn(2, 10, 20_000)[1:]
    messages[-1] = AIMessage("the answer " * 300)
    kept = fit_chars(messages, 5000)
    assert size(kept) <= 5000 and paired(kept)
    assert kept[0] == messages[4]  # the newest user message, whole
    assert "cut to fit the model input limit" in str(kept[2].content)


def test_the_newest_user_message_is_never_cut() -> None:
    messages = turn(1, 100, 100) + [HumanMessage("x" * 4000)]
    assert fit_chars(messages, 1000) == [messages[-1]]


# ------------------------------------------------------------------------ token budget


def task(n: int) -> dict[str, object]:
    return {
        "id": f"TASK-{n:04d}",
        "title": f"Vendor review item {n}",
        "description": "Collect the quotes and compare them.",
        "priority": "normal",
        "status": "pending",
        "due_date": "2027-01-15",
        "tags": ["work"],
        "created_at": "2026-12-07T00:12:33.123456+00:00",
        "updated_at": "2026-12-07T00:12:33.123456+00:00",
        "completed_at": None,
    }


def listing(count: int) -> list[BaseMessage]:
    call = {"name": "list_tasks", "args": {}, "id": "call-list"}
    result = {"ok": True, "count": count, "tasks": [task(n) for n in range(count)]}
    return [
        HumanMessage("show all my tasks"),
        AIMessage("", tool_calls=[call]),
        ToolMessage(json.dumps(result), tool_call_id="call-list"),
    ]


def tokens(messages: list[BaseMessage]) -> int:
    return sum(message_tokens(m) for m in messages)


def test_token_estimates_count_digits_and_non_ascii_as_a_token_each_punctuation_as_half() -> None:
    assert text_tokens("a" * 35) == 10  # letters at 3.5 characters a token
    assert text_tokens("2026-12-07") == 8 + 1  # eight digits, two dashes at half a token
    assert text_tokens("会议记录") == 4
    assert message_tokens(HumanMessage("")) == MESSAGE_TOKENS


def test_a_long_list_result_keeps_its_count_and_the_main_fields_of_every_task() -> None:
    messages = listing(60)
    full = tokens(messages)
    kept = fit_tokens(messages, full * 2 // 3)
    assert tokens(kept) <= full * 2 // 3 and paired(kept)
    result = json.loads(str(kept[-1].content))
    assert result["count"] == 60 and len(result["tasks"]) == 60
    assert result["tasks"][5] == {
        "id": "TASK-0005",
        "title": "Vendor review item 5",
        "status": "pending",
        "priority": "normal",
        "due_date": "2027-01-15",
    }
    assert "60 of 60 tasks" in result["note"]


def test_a_list_too_long_even_as_titles_shows_the_count_and_as_many_titles_as_fit() -> None:
    kept = fit_tokens(listing(60), 600)
    assert tokens(kept) <= 600 and paired(kept)
    result = json.loads(str(kept[-1].content))  # valid JSON, never cut mid-way
    shown = result["tasks"]
    assert result["count"] == 60 and 5 < len(shown) < 60
    assert shown[0] == {"id": "TASK-0000", "title": "Vendor review item 0"}
    assert f"id, title of {len(shown)} of 60 tasks" in result["note"]
    assert "smaller limit" in result["note"]


def test_old_turns_go_before_the_newest_turn_is_shortened() -> None:
    older = [m for n in range(30) for m in turn(n, 200, 300)]
    messages = older + listing(20)
    budget = tokens(listing(20)) + 50
    kept = fit_tokens(messages, budget)
    assert kept == listing(20)


def test_the_newest_user_message_stays_whole_even_over_the_token_budget() -> None:
    messages = turn(1, 100, 100) + [HumanMessage("7" * 3000)]
    kept = fit_tokens(messages, 1000)
    assert kept == [messages[-1]] and tokens(kept) > 1000
