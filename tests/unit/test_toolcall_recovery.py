"""Tool calls small local models write as text, in the shapes Qwen/llama.cpp produce (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.messages.tool import tool_call

from models.toolcalls import clean_answer, normalize_tool_calls
from tools.schemas import TOOL_ARGS, CreateTaskArgs


def norm(content: str, **kwargs: Any) -> AIMessage:
    return normalize_tool_calls(AIMessage(content=content, id="m", **kwargs), TOOL_ARGS)


def calls(message: AIMessage) -> list[tuple[str, dict[str, Any]]]:
    return [(c["name"], c["args"]) for c in message.tool_calls]


MILK = ("create_task", {"title": "Buy milk"})


@pytest.mark.parametrize(
    "content",
    [
        '{{"name": "create_task", "arguments": {{"title": "Buy milk"}}}}',
        # one closing brace too many, as the issue quotes it
        '{{"name": "create_task", "arguments": {{"title": "Buy milk"}}}}}',
        '```json\n{{"name": "create_task", "arguments": {{"title": "Buy milk"}}}}\n```',
        '<tool_call>\n{{"name": "create_task", "arguments": {{"title": "Buy milk"}}}}\n'
        "</tool_call>",
    ],
)
def test_doubled_braces_become_a_call_and_leave_nothing_behind(content: str) -> None:
    msg = norm(content)
    assert calls(msg) == [MILK]
    assert msg.content == ""


def test_doubled_braces_inside_a_title_are_kept() -> None:
    msg = norm('{{"name": "create_task", "arguments": {{"title": "Fix {{x}} in template"}}}}')
    assert calls(msg) == [("create_task", {"title": "Fix {{x}} in template"})]


def test_doubled_brace_call_with_invalid_arguments_reaches_the_guard() -> None:
    # "medium" is not a priority: the guard answers the model with the error to correct.
    msg = norm(
        '{{"name": "create_task", "arguments": {{"title": "Call Bob", "priority": "medium"}}}}}'
    )
    assert calls(msg) == [("create_task", {"title": "Call Bob", "priority": "medium"})]
    assert msg.content == ""


@pytest.mark.parametrize(
    "content",
    [
        '<tool_call>\n{"name": "create_task", "arguments": {"title": "A"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "create_task", "arguments": {"title": "B"}}\n</tool_call>',
        '```json\n{"name": "create_task", "arguments": {"title": "A"}}\n```\n\n'
        '```json\n{"name": "create_task", "arguments": {"title": "B"}}\n```',
        '{"name": "create_task", "arguments": {"title": "A"}}\n'
        '{"name": "create_task", "arguments": {"title": "B"}}',
        '[{"name": "create_task", "arguments": {"title": "A"}},'
        ' {"name": "create_task", "arguments": {"title": "B"}}]',
        # two calls inside one tag, and a closing tag the model forgot
        '<tool_call>\n{"name": "create_task", "arguments": {"title": "A"}}\n'
        '{"name": "create_task", "arguments": {"title": "B"}}',
    ],
)
def test_several_calls_in_one_reply(content: str) -> None:
    msg = norm(content)
    assert calls(msg) == [("create_task", {"title": "A"}), ("create_task", {"title": "B"})]
    assert len({c["id"] for c in msg.tool_calls}) == 2
    assert msg.content == ""


def test_several_calls_with_a_short_sentence_keep_the_sentence() -> None:
    msg = norm(
        "Adding both.\n"
        '<tool_call>{"name": "create_task", "arguments": {"title": "A"}}</tool_call>\n'
        '<tool_call>{"name": "complete_task", "arguments": {"task_id": "TASK-0002"}}</tool_call>'
    )
    assert calls(msg) == [
        ("create_task", {"title": "A"}),
        ("complete_task", {"task_id": "TASK-0002"}),
    ]
    assert msg.content == "Adding both."


@pytest.mark.parametrize(
    "content",
    [
        '{"function": "create_task", "arguments": {"title": "Buy milk"}}',
        '{"function": "create_task", "parameters": {"title": "Buy milk"}}',
        '<tool_call>{"function": "create_task", "arguments": "{\\"title\\": \\"Buy milk\\"}"}'
        "</tool_call>",
    ],
)
def test_function_as_the_name_key(content: str) -> None:
    msg = norm(content)
    assert calls(msg) == [MILK]
    assert msg.content == ""


def test_function_name_key_next_to_another_name_is_not_a_call() -> None:
    content = '{"function": "create_task", "name": "list_tasks", "arguments": {}}'
    assert norm(content).tool_calls == []


def test_tagged_call_with_invalid_arguments_becomes_a_call_not_text() -> None:
    msg = norm(
        "Sure! Here is what I will do for you right now with that request:\n"
        '<tool_call>{"name": "update_task", "arguments": {"task_id": "TASK-1", "due": "soon"}}'
        "</tool_call>"
    )
    assert calls(msg) == [("update_task", {"task_id": "TASK-1", "due": "soon"})]
    assert "{" not in str(msg.content) and "tool_call" not in str(msg.content)


def test_a_call_to_a_tool_we_do_not_offer_is_not_run() -> None:
    content = '<tool_call>{"name": "drop_database", "arguments": {}}</tool_call>'
    assert norm(content).tool_calls == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ }", ""),
        ("{}", ""),
        ("  {\n}  ", ""),
        ("<tool_call>\n</tool_call>", ""),
        ("<tool_call></tool_call>\n{ }", ""),
        ("```json\n{ }\n```", ""),
        ("I created the task.\n{ }", "I created the task."),
        ("Done.\n}}\n", "Done."),
        ("Use {curly braces} for placeholders.", "Use {curly braces} for placeholders."),
        ("You have 3 open tasks.", "You have 3 open tasks."),
    ],
)
def test_leftovers_are_removed_from_the_answer(content: str, expected: str) -> None:
    assert clean_answer(content) == expected
    msg = norm(content)
    assert msg.tool_calls == []
    assert msg.content == expected


def test_leftovers_next_to_structured_calls_are_removed() -> None:
    existing = tool_call(name="list_tasks", args={}, id="call_1")
    msg = norm("<tool_call>\n</tool_call>\n{ }", tool_calls=[existing])
    assert calls(msg) == [("list_tasks", {})]
    assert msg.content == ""


def test_recovered_doubled_brace_call_validates() -> None:
    msg = norm(
        '<tool_call>\n{{"name": "create_task", "arguments": {{"title": "Pay rent", '
        '"priority": "high", "tags": ["home"]}}}}\n</tool_call>'
    )
    [(name, args)] = calls(msg)
    assert name == "create_task"
    assert CreateTaskArgs.model_validate(args).priority == "high"


def test_a_call_explained_to_the_user_in_a_fence_is_made_and_the_explanation_dropped() -> None:
    text = (
        "To remove the clean garage task, you can use the `delete_task` function. Here's how"
        ' you can do it:\n\n```json\n{\n  "name": "delete_task",\n  "arguments": {\n'
        '    "task": "TASK-0002"\n```'
    )
    message = normalize_tool_calls(AIMessage(content=text), TOOL_ARGS)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("delete_task", {"task": "TASK-0002"})
    ]
    assert message.content == ""


def test_bare_json_quoted_in_mostly_prose_is_still_left_alone() -> None:
    text = (
        'An example of what the tools accept is {"name": "create_task", "arguments": {"title":'
        ' "x"}} but I am only explaining the format here, not asking for anything at all.'
    )
    message = normalize_tool_calls(AIMessage(content=text), TOOL_ARGS)
    assert message.tool_calls == [] and message.content == text


def test_a_call_whose_json_cannot_be_read_goes_to_the_guard_not_to_the_user() -> None:
    raw = '{"name": "create_task", "arguments": {"title": "Repair check" "priority": }}'
    message = normalize_tool_calls(AIMessage(content=raw), TOOL_ARGS)
    assert [c["name"] for c in message.tool_calls] == ["create_task"]
    assert message.tool_calls[0]["args"] == {"__invalid_arguments__": raw}
    assert message.content == ""
