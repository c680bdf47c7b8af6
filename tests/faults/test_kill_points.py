"""Kill points the fault suite found bugs at, each pinned by a regression test."""

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import httpx
import pytest

from faults.client import chat_body, read_events
from faults.server import ServerProcess, integrity_failures

pytestmark = pytest.mark.integration

CREATE = "Create a task called Pinned kill, high priority"


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


async def test_a_run_killed_before_its_input_was_checkpointed_still_runs_after_restart(
    tmp_path: Path,
) -> None:
    data, arm = tmp_path / "data", tmp_path / "arm"
    server = ServerProcess(data, env={"FAULTS_KILL_ARM": str(arm)}, killpoints=True)
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            first = await http.post("/chat", json=chat_body("list my tasks"))
            thread_id = first.json()["thread_id"]
            arm.write_text("after_run_start 1")  # dies once the run has marked its thread busy
            with contextlib.suppress(httpx.HTTPError):
                await http.post("/chat", json=chat_body(CREATE, thread_id))
        assert await asyncio.to_thread(server.wait_dead, 10), "the kill point was not reached"

        # The run is on record as running, but no checkpoint has its input.
        [(run_id, status)] = rows(
            data / "runs.sqlite", f"SELECT run_id, status FROM runs WHERE payload LIKE '%{CREATE}%'"
        )
        assert status == "running"
        checkpoints = rows(
            data / "checkpoints.sqlite",
            "SELECT COUNT(*) FROM checkpoints"
            f" WHERE json_extract(CAST(metadata AS TEXT), '$.run_id') = '{run_id}'",
        )
        assert checkpoints == [(0,)]
        first_run = first.json()["run_id"]
        first_run_checkpoints = rows(
            data / "checkpoints.sqlite",
            "SELECT COUNT(*) FROM checkpoints"
            f" WHERE json_extract(CAST(metadata AS TEXT), '$.run_id') = '{first_run}'",
        )
        assert first_run_checkpoints != [(0,)]  # the query does find a run's checkpoints

        await asyncio.to_thread(server.start)
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=30) as http,
            http.stream("GET", f"/chat/runs/{run_id}/stream") as response,
        ):
            events = [event async for event in read_events(response)]
        done = [event.data for event in events if event.event == "done"]
        assert len(done) == 1 and "Pinned kill" in done[0]["message"], events
        assert rows(data / "tasks.sqlite", "SELECT title FROM tasks") == [("Pinned kill",)]
        assert rows(data / "runs.sqlite", f"SELECT status FROM runs WHERE run_id = '{run_id}'") == [
            ("success",)
        ]
        assert integrity_failures(data) == []
    finally:
        await asyncio.to_thread(server.close)


async def test_an_approval_killed_before_its_first_checkpoint_still_deletes_after_restart(
    tmp_path: Path,
) -> None:
    data, arm = tmp_path / "data", tmp_path / "arm"
    server = ServerProcess(data, env={"FAULTS_KILL_ARM": str(arm)}, killpoints=True)
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            created = await http.post("/chat", json=chat_body(CREATE))
            thread_id = created.json()["thread_id"]
            asked = await http.post("/chat", json=chat_body("delete TASK-0001", thread_id))
            assert asked.json()["interrupt"]["task_id"] == "TASK-0001"
            # Dies once the approved step has run and its writes are saved, before its checkpoint.
            arm.write_text("after_resume_write 2")
            with contextlib.suppress(httpx.HTTPError):
                await http.post("/chat", json=chat_body(None, thread_id, {"approved": True}))
        assert await asyncio.to_thread(server.wait_dead, 10), "the kill point was not reached"
        [(run_id, status)] = rows(
            data / "runs.sqlite", "SELECT run_id, status FROM runs WHERE payload LIKE '%resume%'"
        )
        assert status == "running"

        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with http.stream("GET", f"/chat/runs/{run_id}/stream") as response:
                events = [event async for event in read_events(response)]
            done = [event.data for event in events if event.event == "done"]
            assert len(done) == 1 and "TASK-0001" in done[0]["message"], events
            follow_up = await http.post("/chat", json=chat_body("list my tasks", thread_id))
            assert follow_up.status_code == 200, follow_up.text
        assert rows(data / "tasks.sqlite", "SELECT id FROM tasks") == []
        assert rows(data / "runs.sqlite", f"SELECT status FROM runs WHERE run_id = '{run_id}'") == [
            ("success",)
        ]
        assert integrity_failures(data) == []
    finally:
        await asyncio.to_thread(server.close)
