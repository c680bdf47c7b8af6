"""The model input budget: whole old turns go first, tool calls keep their results."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from graph.window import fit_chars, message_chars


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
