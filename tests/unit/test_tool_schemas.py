"""What the model is offered: compact tool definitions and a prompt that agree with them."""

from __future__ import annotations

import json
from datetime import date

import pytest

from graph.prompts import system_prompt
from tools.references import as_task_id, resolve
from tools.schemas import TOOL_ARGS, tool_definition
from tools.usage import estimate_tokens

# Before the compaction the 7 definitions and the prompt came to 6,230 characters (1,556
# estimated tokens; 1,785 by a real tokenizer): a 4,096-token context lost half of it to them.
BEFORE_TOKENS = 1556


def offered() -> tuple[str, str]:
    definitions = json.dumps([tool_definition(name) for name in TOOL_ARGS])
    return definitions, system_prompt(date(2026, 12, 7))


def test_definitions_and_prompt_take_under_half_of_what_they_did() -> None:
    definitions, prompt = offered()
    tokens = estimate_tokens(definitions) + estimate_tokens(prompt)
    assert tokens <= BEFORE_TOKENS // 2, f"{tokens} tokens ({len(definitions) + len(prompt)} chars)"


@pytest.mark.parametrize("name", list(TOOL_ARGS))
def test_each_definition_is_the_arguments_the_guard_accepts(name: str) -> None:
    function = tool_definition(name)["function"]
    parameters = function["parameters"]
    model = TOOL_ARGS[name]
    assert set(parameters["properties"]) == set(model.model_fields)
    assert set(parameters.get("required", [])) == {
        n for n, f in model.model_fields.items() if f.is_required()
    }
    for spec in parameters["properties"].values():
        assert not {"title", "anyOf", "default"} & set(spec), spec  # pydantic's repetitions
    assert function["description"] and len(function["description"]) <= 40


def test_dates_are_described_the_same_way_as_in_the_prompt() -> None:
    prompt = " ".join(offered()[1].split())
    assert "the user's own words ('next Friday', 'December 15') or YYYY-MM-DD" in prompt
    assert "or YYYY-MM-DD; do not compute dates" in prompt
    for name in ("create_task", "update_task"):
        due = tool_definition(name)["function"]["parameters"]["properties"]["due_date"]
        assert due["description"] == (
            "User's words ('next Friday', 'December 15') or YYYY-MM-DD; don't compute"
        )


def test_task_references_say_where_ids_come_from() -> None:
    for name in ("get_task", "update_task", "complete_task", "delete_task"):
        task = tool_definition(name)["function"]["parameters"]["properties"]["task"]
        assert task == {"description": "Id (from results/user) or title words", "type": "string"}
    _, prompt = offered()
    assert "if you changed tasks, name them" in prompt
    assert "say which tasks you changed" not in prompt


@pytest.mark.parametrize(
    ("reference", "task_id"),
    [("TASK-0003", "TASK-0003"), ("task 3", "TASK-0003"), ("#3", "TASK-0003"), ("12", "TASK-0012")],
)
def test_ids_are_read_in_the_ways_people_write_them(reference: str, task_id: str) -> None:
    assert as_task_id(reference) == task_id


TASKS = [
    {"id": "TASK-0001", "title": "Pay bills", "status": "pending", "due_date": None},
    {"id": "TASK-0002", "title": "Call mom", "status": "pending", "due_date": None},
    {"id": "TASK-0003", "title": "Call mom and dad", "status": "pending", "due_date": None},
    {"id": "TASK-0004", "title": "File taxes", "status": "completed", "due_date": None},
]


@pytest.mark.parametrize(
    ("words", "task_id"),
    [
        ("bill", "TASK-0001"),  # plural endings are loosened both ways
        ("the tax task", "TASK-0004"),
        ("CALL MOM", "TASK-0002"),  # an exact title wins over the longer one
        ("mom and dad", "TASK-0003"),
        ("TASK-0003 (Call mom and dad)", "TASK-0003"),
    ],
)
def test_title_words_name_one_task(words: str, task_id: str) -> None:
    assert resolve(words, TASKS, "update_task").task_id == task_id


def test_unclear_words_name_no_task() -> None:
    several = resolve("call", TASKS, "delete_task")
    assert several.task_id is None and [c["id"] for c in several.candidates] == [
        "TASK-0002",
        "TASK-0003",
    ]
    none = resolve("the task", TASKS, "update_task")  # no word that picks a task
    assert none.task_id is None and none.problem.startswith('No task matches "the task"')
    assert [c["id"] for c in none.candidates] == ["TASK-0001", "TASK-0002", "TASK-0003"]
