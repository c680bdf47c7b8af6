from __future__ import annotations

import json
import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call

from models.toolcalls import (
    INVALID_ARGUMENTS_KEY,
    normalize_tool_calls,
    parse_arguments,
    repair_json,
)
from tools.schemas import TOOL_ARGS, CreateTaskArgs

CALL_ID = re.compile(r"^call_[0-9a-f]{24}$")


def norm(content: str | list[str | dict[str, Any]], **kwargs) -> AIMessage:
    return normalize_tool_calls(AIMessage(content=content, id="msg-1", **kwargs), TOOL_ARGS)


def calls(message: AIMessage) -> list[tuple[str, dict[str, Any]]]:
    return [(c["name"], c["args"]) for c in message.tool_calls]


# ------------------------------------------------------------------ calls written as text


def test_bare_json_object_becomes_a_tool_call() -> None:
    msg = norm('{"name": "create_task", "arguments": {"title": "Buy milk"}}')
    assert calls(msg) == [("create_task", {"title": "Buy milk"})]
    assert msg.content == ""
    assert CALL_ID.match(msg.tool_calls[0]["id"] or "")
    assert msg.tool_calls[0]["type"] == "tool_call"
    assert msg.invalid_tool_calls == []


@pytest.mark.parametrize(
    "content",
    [
        '{"tool": "create_task", "args": {"title": "Buy milk"}}',
        '{"name": "create_task", "parameters": {"title": "Buy milk"}}',  # llama3.x style
        '{"type": "function", "function": {"name": "create_task", '
        '"arguments": "{\\"title\\": \\"Buy milk\\"}"}}',  # OpenAI style, args as string
        '{"function": {"name": "create_task", "arguments": {"title": "Buy milk"}}}',
        '{"tool_calls": [{"name": "create_task", "arguments": {"title": "Buy milk"}}]}',
        '  \n{"name": "create_task", "arguments": {"title": "Buy milk"}}\n  ',
    ],
)
def test_json_envelope_shapes(content: str) -> None:
    msg = norm(content)
    assert calls(msg) == [("create_task", {"title": "Buy milk"})]
    assert msg.content == ""


@pytest.mark.parametrize("lang", ["json", "JSON", ""])
def test_fenced_json(lang: str) -> None:
    content = f'```{lang}\n{{"name": "list_tasks", "arguments": {{"status": "pending"}}}}\n```'
    msg = norm(content)
    assert calls(msg) == [("list_tasks", {"status": "pending"})]
    assert msg.content == ""


def test_list_of_calls_and_one_call_per_line() -> None:
    content = json.dumps(
        [
            {"name": "create_task", "arguments": {"title": "A"}},
            {"name": "create_task", "arguments": {"title": "B"}},
        ]
    )
    msg = norm(content)
    assert calls(msg) == [("create_task", {"title": "A"}), ("create_task", {"title": "B"})]
    ids = [c["id"] for c in msg.tool_calls]
    assert len(set(ids)) == 2
    lines = '{"name": "task_summary", "arguments": {}}\n{"name": "list_tasks", "arguments": {}}'
    assert calls(norm(lines)) == [("task_summary", {}), ("list_tasks", {})]


def test_openai_nested_arguments_string() -> None:
    content = json.dumps(
        {"function": {"name": "get_task", "arguments": json.dumps({"task_id": "TASK-0003"})}}
    )
    assert calls(norm(content)) == [("get_task", {"task_id": "TASK-0003"})]


def test_missing_arguments_means_none() -> None:
    assert calls(norm('{"name": "task_summary"}')) == [("task_summary", {})]


def test_call_with_a_little_prose_keeps_the_prose() -> None:
    msg = norm(
        'Sure, creating it now:\n```json\n{"name": "create_task", '
        '"arguments": {"title": "Buy milk", "priority": "high"}}\n```'
    )
    assert calls(msg) == [("create_task", {"title": "Buy milk", "priority": "high"})]
    assert msg.content == "Sure, creating it now:"
    inline = norm('On it. {"name": "complete_task", "arguments": {"task_id": "TASK-7"}}')
    assert calls(inline) == [("complete_task", {"task_id": "TASK-7"})]
    assert inline.content == "On it."


def test_python_style_call_text_is_repaired() -> None:
    msg = norm("{'name': 'create_task', 'arguments': {'title': 'Buy milk',}}")
    assert calls(msg) == [("create_task", {"title": "Buy milk"})]


def test_whole_content_call_with_invalid_args_still_becomes_a_call_for_the_guard() -> None:
    # Unambiguous intent: the guard validates and bounces the error back to the model.
    msg = norm('{"name": "create_task", "arguments": {"title": "x", "priority": "medium"}}')
    assert calls(msg) == [("create_task", {"title": "x", "priority": "medium"})]


@pytest.mark.parametrize(
    "content",
    [
        "Use {curly braces} for placeholders, e.g. {name}.",
        'The config is {"a": 1, "b": [1, 2]} and that is fine.',
        '{"a": 1, "b": 2}',  # JSON, but not a tool call
        '{"name": "Alice", "age": 31}',  # has "name" but extra keys: data, not a call
        '["create_task", "list_tasks"]',
        "{not json at all",
        "",
        # prose that quotes an example call is mostly prose: leave it
        'To add a task I would normally send {"name": "create_task", "arguments": '
        '{"title": "x"}} but first tell me more about what you want the title, the due '
        "date and the priority of this new task to be, and whether it has any tags.",
        # some prose around a call whose arguments do not validate
        "Here you go, with the details you gave me earlier in our conversation today: "
        '{"name": "create_task", "arguments": {"title": ""}}',
    ],
)
def test_text_left_alone(content: str) -> None:
    msg = norm(content)
    assert msg.tool_calls == []
    assert msg.content == content


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "drop_database", "arguments": {}}',
        '```json\n{"tool": "send_email", "args": {"to": "x"}}\n```',
        '[{"name": "create_task", "arguments": {"title": "A"}}, {"name": "rm", "arguments": {}}]',
    ],
)
def test_unknown_tool_left_as_text(content: str) -> None:
    msg = norm(content)
    assert msg.tool_calls == []
    assert msg.content == content


def test_text_blocks_content() -> None:
    blocks: list[str | dict[str, Any]] = [
        {"type": "text", "text": '{"name": "list_tasks", "arguments": {}}'}
    ]
    msg = norm(blocks)
    assert calls(msg) == [("list_tasks", {})]


def test_structured_calls_suppress_text_extraction_and_are_untouched() -> None:
    existing = tool_call(name="list_tasks", args={"bogus": 1}, id="call_1")
    msg = norm('{"name": "create_task", "arguments": {"title": "x"}}', tool_calls=[existing])
    assert calls(msg) == [("list_tasks", {"bogus": 1})]  # schema not checked here
    assert msg.tool_calls[0]["id"] == "call_1"
    assert msg.content == '{"name": "create_task", "arguments": {"title": "x"}}'


def test_metadata_is_preserved() -> None:
    original = AIMessage(
        content='{"name": "task_summary", "arguments": {}}',
        id="run-42",
        response_metadata={"model_name": "llama3.2", "finish_reason": "stop"},
        additional_kwargs={"x": 1},
        usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        name="assistant",
    )
    msg = normalize_tool_calls(original, TOOL_ARGS)
    assert msg is not original
    assert type(msg) is AIMessage
    assert msg.id == "run-42"
    assert msg.name == "assistant"
    assert msg.response_metadata == original.response_metadata
    assert msg.additional_kwargs == {"x": 1}
    assert msg.usage_metadata == original.usage_metadata
    assert original.tool_calls == []  # input not mutated


def test_plain_text_passes_through() -> None:
    msg = norm("You have 3 open tasks.")
    assert msg.content == "You have 3 open tasks." and msg.tool_calls == []


# --------------------------------------------------------------- invalid structured calls


def bad_call(raw: str, *, name: str = "create_task", call_id: str = "call_abc") -> AIMessage:
    return AIMessage(
        content="",
        id="m",
        invalid_tool_calls=[invalid_tool_call(name=name, args=raw, id=call_id, error="bad")],
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{'title': 'Buy milk'}", {"title": "Buy milk"}),
        ('{"title": "Buy milk",}', {"title": "Buy milk"}),
        ('{"title": "Buy milk", "tags": ["a", "b",],}', {"title": "Buy milk", "tags": ["a", "b"]}),
        ('{title: "Buy milk", priority: "high"}', {"title": "Buy milk", "priority": "high"}),
        ('```json\n{"title": "Buy milk"}\n```', {"title": "Buy milk"}),
        ('{"overdue": True, "status": None}', {"overdue": True, "status": None}),
        ('{"title": "Buy milk"', {"title": "Buy milk"}),  # truncated
        ('"{\\"title\\": \\"Buy milk\\"}"', {"title": "Buy milk"}),  # double-encoded
        ("{'title': 'Bob\\'s \"big\" day'}", {"title": 'Bob\'s "big" day'}),
        ('{"title": "it\'s fine", "description": "True story"}', None),  # already valid
    ],
)
def test_invalid_args_repaired_keep_id(raw: str, expected: dict[str, Any] | None) -> None:
    msg = normalize_tool_calls(bad_call(raw), TOOL_ARGS)
    assert msg.invalid_tool_calls == []
    [call] = msg.tool_calls
    assert call["id"] == "call_abc"
    assert call["name"] == "create_task"
    assert call["args"] == (expected if expected is not None else json.loads(raw))


def test_repaired_create_task_validates() -> None:
    msg = normalize_tool_calls(bad_call("{'title': 'Buy milk', 'priority': 'high',}"), TOOL_ARGS)
    CreateTaskArgs.model_validate(msg.tool_calls[0]["args"])


@pytest.mark.parametrize(
    "raw",
    ["title = Buy milk", "<tool>create_task</tool>", "[1, 2, 3]", '{"title": "x"} trailing junk'],
)
def test_unrepairable_args_are_marked_not_dropped(raw: str) -> None:
    msg = normalize_tool_calls(bad_call(raw, name="update_task", call_id="call_9"), TOOL_ARGS)
    assert msg.invalid_tool_calls == []
    [call] = msg.tool_calls
    assert call == {
        "name": "update_task",
        "args": {INVALID_ARGUMENTS_KEY: raw},
        "id": "call_9",
        "type": "tool_call",
    }


def test_invalid_call_without_name_or_id() -> None:
    msg = AIMessage(
        content="", invalid_tool_calls=[invalid_tool_call(name=None, args="???", id=None)]
    )
    [call] = normalize_tool_calls(msg, TOOL_ARGS).tool_calls
    assert call["name"] == ""
    assert call["args"] == {INVALID_ARGUMENTS_KEY: "???"}
    assert CALL_ID.match(call["id"] or "")


def test_valid_and_invalid_calls_are_kept_together() -> None:
    msg = AIMessage(
        content="",
        tool_calls=[tool_call(name="list_tasks", args={}, id="call_1")],
        invalid_tool_calls=[invalid_tool_call(name="create_task", args="{'title': 'A'}", id="c2")],
    )
    out = normalize_tool_calls(msg, TOOL_ARGS)
    assert [(c["id"], c["name"], c["args"]) for c in out.tool_calls] == [
        ("call_1", "list_tasks", {}),
        ("c2", "create_task", {"title": "A"}),
    ]


# ------------------------------------------------------------------------ repair helpers


def test_repair_is_deterministic_and_leaves_strings_alone() -> None:
    raw = "{'a': 'x, }', b: [True, None,],}"
    assert repair_json(raw) == repair_json(raw)
    assert json.loads(repair_json(raw)) == {"a": "x, }", "b": [True, None]}
    assert repair_json('{"k": "True, None"}') == '{"k": "True, None"}'


def test_parse_arguments_edge_cases() -> None:
    assert parse_arguments("") == {}
    assert parse_arguments("null") == {}
    assert parse_arguments("[]") is None
    assert parse_arguments("x" * 200_000) is None
    assert parse_arguments('{"a": {"b": [1, 2]}}') == {"a": {"b": [1, 2]}}
