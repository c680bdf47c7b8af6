from datetime import date

import pytest
from pydantic import ValidationError

from tools.schemas import CreateTaskArgs, ListTasksArgs, UpdateTaskArgs
from tools.store import TaskStore
from tools.tasks import Call, run_tool

TODAY = date(2026, 11, 22)


async def call(store: TaskStore, name: str, args, call_id: str, owner: str = "alice"):
    return await run_tool(store, name, args, owner=owner, scope=owner, call=Call(call_id, TODAY))


async def test_create_assigns_human_ids_and_stores_fields(store):
    first = await call(
        store,
        "create_task",
        CreateTaskArgs(
            title="Quarterly review", priority="high", due_date="2026-11-27", tags=["#work"]
        ),
        "c1",
    )
    second = await call(store, "create_task", CreateTaskArgs(title="Buy milk"), "c2")
    assert first["task"]["id"] == "TASK-0001"
    assert second["task"]["id"] == "TASK-0002"
    task = await store.get("alice", "task-0001")
    assert task is not None
    assert (task["title"], task["priority"], task["status"], task["due_date"], task["tags"]) == (
        "Quarterly review",
        "high",
        "pending",
        "2026-11-27",
        ["work"],
    )


async def test_replayed_call_id_changes_nothing_and_returns_the_first_result(store):
    args = CreateTaskArgs(title="Only once")
    first = await call(store, "create_task", args, "same-call")
    again = await call(store, "create_task", args, "same-call")
    assert again == first
    assert await store.count() == 1


async def test_natural_due_dates_are_accepted_and_bad_ones_explained(store):
    ok = await call(
        store, "create_task", CreateTaskArgs(title="Call mom", due_date="tomorrow"), "c1"
    )
    assert ok["task"]["due_date"] == "2026-11-23"
    bad = await call(
        store, "create_task", CreateTaskArgs(title="X", due_date="the day after never"), "c2"
    )
    assert bad["ok"] is False and "due_date" in bad["error"]
    assert await store.count() == 1


async def test_unknown_task_is_a_clear_error_not_a_crash(store):
    from tools.schemas import CompleteTaskArgs, DeleteTaskArgs, GetTaskArgs

    for name, args in [
        ("get_task", GetTaskArgs(task_id="TASK-0042")),
        ("complete_task", CompleteTaskArgs(task_id="TASK-0042")),
        ("delete_task", DeleteTaskArgs(task_id="TASK-0042")),
        ("update_task", UpdateTaskArgs(task_id="TASK-0042", title="x")),
    ]:
        result = await call(store, name, args, f"c-{name}")
        assert result == {"ok": False, "error": "Task TASK-0042 not found."}


def test_bad_enums_are_rejected_by_the_schema():
    with pytest.raises(ValidationError):
        CreateTaskArgs(title="x", priority="super")
    with pytest.raises(ValidationError):
        UpdateTaskArgs(task_id="TASK-1", status="done")
    with pytest.raises(ValidationError):  # a reference may be title words, never nothing
        UpdateTaskArgs(task_id="  ")


async def test_update_complete_delete_and_owner_isolation(store):
    from tools.schemas import CompleteTaskArgs, DeleteTaskArgs

    await call(store, "create_task", CreateTaskArgs(title="Report"), "c1")
    updated = await call(
        store,
        "update_task",
        UpdateTaskArgs(task_id="TASK-0001", priority="urgent", title="Annual report"),
        "c2",
    )
    assert updated["changed"] == ["priority", "title"]
    assert updated["task"]["title"] == "Annual report"
    done = await call(store, "complete_task", CompleteTaskArgs(task_id="TASK-0001"), "c3")
    assert done["task"]["status"] == "completed" and done["task"]["completed_at"]
    other = await call(store, "delete_task", DeleteTaskArgs(task_id="TASK-0001"), "c4", owner="bob")
    assert other["ok"] is False
    deleted = await call(store, "delete_task", DeleteTaskArgs(task_id="TASK-0001"), "c5")
    assert deleted == {"ok": True, "deleted": done["task"]}  # whole, as it was
    assert await store.count() == 0


async def test_list_filters_and_summary(store):
    specs = [
        ("Overdue report", "high", "2026-11-20"),
        ("Due Friday", "normal", "2026-11-27"),
        ("Later", "low", "2026-12-10"),
        ("No date urgent", "urgent", None),
    ]
    for i, (title, priority, due) in enumerate(specs):
        await call(
            store,
            "create_task",
            CreateTaskArgs(title=title, priority=priority, due_date=due),
            f"c{i}",
        )
    overdue = await call(store, "list_tasks", ListTasksArgs(overdue=True), "l1")
    assert [t["title"] for t in overdue["tasks"]] == ["Overdue report"]
    high = await call(store, "list_tasks", ListTasksArgs(priority="urgent"), "l2")
    assert [t["title"] for t in high["tasks"]] == ["No date urgent"]
    window = await call(
        store, "list_tasks", ListTasksArgs(due_after="2026-11-22", due_before="2026-11-30"), "l3"
    )
    assert [t["title"] for t in window["tasks"]] == ["Due Friday"]
    text = await call(store, "list_tasks", ListTasksArgs(text="report"), "l4")
    assert text["count"] == 1
    percent = await call(store, "list_tasks", ListTasksArgs(text="%"), "l5")
    assert percent["count"] == 0
    summary = await call(store, "task_summary", ListTasksArgs.model_construct(), "s1")
    assert summary["total"] == 4
    assert summary["overdue"] == 1
    assert summary["by_priority"] == {"low": 1, "normal": 1, "high": 1, "urgent": 1}
    assert summary["due_this_week"] == 0  # 2026-11-22 is a Sunday: the week ends today
