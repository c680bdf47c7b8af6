"""Reads see committed tasks only: a change still in its transaction is invisible to them.

A tool's change runs in one transaction on the store's writer; everything else reads through
its own connection. Here a change inserts a task and then waits, holding its transaction,
while another coroutine reads through the public API; then the change fails and rolls back.
A committed change also reaches other processes, even after one of them closed the file.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from server.runs.threads import ThreadIndex
from tools.database import Connection
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

    async def insert_then_fail(conn: Connection) -> dict[str, Any]:
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
    async def insert(conn: Connection) -> dict[str, Any]:
        return {"ok": True, "task": await insert_task(conn, "alice", {**FIELDS, "tags": []})}

    result = await store.apply_once("call-1", "alice", "create_task", {}, insert)
    assert [t["id"] for t in await store.find("alice")] == [result["task"]["id"]]
    assert await store.stored_result("call-1") == result


def titles_read_by_another_process(path: Path) -> list[str]:
    """The titles another OS process reads with its own connection, which it then closes."""
    script = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1])\n"
        "print('\\n'.join(r[0] for r in conn.execute('SELECT title FROM tasks ORDER BY seq')))\n"
        "conn.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


async def create(store: TaskStore, title: str) -> None:
    async def insert(conn: Connection) -> dict[str, Any]:
        task = await insert_task(conn, "alice", {**FIELDS, "title": title, "tags": []})
        return {"ok": True, "task": task}

    await store.apply_once(f"create-{title}", "alice", "create_task", {}, insert)


async def test_a_change_reaches_other_processes_after_one_of_them_closed_the_file(
    tmp_path: Path,
) -> None:
    """Every connection the service opens on tasks.sqlite keeps its hold on the file.

    The store opens two connections and the thread index a third; had opening one released
    the others' locks, the other process's close would delete the WAL under the store.
    """
    path = tmp_path / "tasks.sqlite"
    store = await TaskStore.open(path)
    index = await ThreadIndex.open(path, busy_timeout_ms=5000, synchronous="NORMAL")
    try:
        await create(store, "First")
        assert titles_read_by_another_process(path) == ["First"]
        await create(store, "Second")
        assert titles_read_by_another_process(path) == ["First", "Second"]
        assert [t["title"] for t in await store.find("alice")] == ["First", "Second"]
    finally:
        await index.close()
        await store.close()
