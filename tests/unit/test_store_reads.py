"""Reads see committed tasks only: a change still in its transaction is invisible to them.

A tool's change runs in one transaction on the store's writer; everything else reads through
its own connection. Here a change inserts a task and then waits, holding its transaction,
while another coroutine reads through the public API; then the change fails and rolls back.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import aiosqlite
import pytest

from tools.schemas import ListTasksArgs
from tools.store import TaskStore
from tools.task_store import insert_task
from tools.tasks import Call, run_tool

TODAY = date(2026, 12, 7)
FIELDS = {"title": "Never committed", "description": "", "priority": "high", "due_date": None}


class ChangeFailed(Exception):
    """The held change gives up after its insert, so its transaction rolls back."""


async def test_a_task_in_an_open_transaction_is_never_read_and_gone_after_rollback(
    store: TaskStore,
) -> None:
    inserted, release = asyncio.Event(), asyncio.Event()

    async def insert_then_fail(conn: aiosqlite.Connection) -> dict[str, Any]:
        await insert_task(conn, "alice", {**FIELDS, "tags": ["held"]})
        inserted.set()
        await release.wait()
        raise ChangeFailed

    change = asyncio.create_task(
        store.apply_once("held-call", "alice", "create_task", {}, insert_then_fail)
    )
    await asyncio.wait_for(inserted.wait(), 5)

    # The change's transaction is open and holds the new row; reads must not see it.
    assert await store.find("alice") == []
    assert await store.get("alice", "TASK-0001") is None
    assert await store.count() == 0
    assert (await store.summary("alice", TODAY))["total"] == 0
    listed = await run_tool(
        store, "list_tasks", ListTasksArgs(), owner="alice", scope="alice", call=Call("r1", TODAY)
    )
    assert listed["tasks"] == [] and listed["total"] == 0
    assert not change.done()  # the reads did not wait for the change to finish

    release.set()
    with pytest.raises(ChangeFailed):
        await change
    assert await store.find("alice") == []
    assert await store.count() == 0
    assert await store.stored_result("held-call") is None


async def test_a_committed_change_is_read_at_once(store: TaskStore) -> None:
    async def insert(conn: aiosqlite.Connection) -> dict[str, Any]:
        return {"ok": True, "task": await insert_task(conn, "alice", {**FIELDS, "tags": []})}

    result = await store.apply_once("call-1", "alice", "create_task", {}, insert)
    assert [t["id"] for t in await store.find("alice")] == [result["task"]["id"]]
    assert await store.stored_result("call-1") == result
