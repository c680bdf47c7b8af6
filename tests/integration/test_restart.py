"""SIGKILL the server mid-run, restart it, and rejoin: the answer completes, nothing runs twice."""

import asyncio
import sqlite3
from typing import Any

import pytest
from langgraph_sdk import get_client

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

CREATE = "Create a high-priority task for the quarterly review due next Friday"
PACED = {"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "30"}


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def is_answer_token(part: Any) -> bool:
    return (
        part.event == "messages"
        and part.data[0]["type"] == "AIMessageChunk"
        and bool(part.data[0]["content"])
    )


def task_rows(data_dir) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "tasks.sqlite") as db:
        return db.execute("SELECT id, title FROM tasks").fetchall()


def check_integrity(data_dir) -> None:
    for name in ("checkpoints.sqlite", "tasks.sqlite", "runs.sqlite"):
        with sqlite3.connect(data_dir / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_one_sdk_stream_survives_a_server_kill_and_restart(tmp_path):
    server = LiveServer(tmp_path / "data", env=PACED)
    restarted: LiveServer | None = None
    try:
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        parts = []
        async for part in client.runs.stream(
            tid, "agent", input=human(CREATE), stream_mode=["updates", "messages-tuple"]
        ):
            parts.append(part)
            if restarted is None and is_answer_token(part):
                server.kill()  # mid-answer, after the task was created
                restarted = await asyncio.to_thread(LiveServer, server.data_dir, server.port, PACED)
        ids = [int(p.id) for p in parts if p.id is not None]
        assert ids == list(range(1, len(ids) + 1)), "events must be gap-free and unduplicated"
        attempts = [p.data["attempt"] for p in parts if p.event == "metadata"]
        assert attempts == [1, 2]
        second = next(
            i for i, p in enumerate(parts) if p.event == "metadata" and p.data["attempt"] == 2
        )
        answer = "".join(p.data[0]["content"] for p in parts[second:] if is_answer_token(p))
        assert answer.startswith("Created TASK-0001") and "Quarterly review" in answer
        assert task_rows(server.data_dir) == [("TASK-0001", "Quarterly review")]
        state = await client.threads.get_state(tid)
        values = state["values"]
        assert isinstance(values, dict) and values["messages"][-1]["content"] == answer
        runs = await client.runs.list(tid)
        assert [r["status"] for r in runs] == ["success"]
        check_integrity(server.data_dir)
    finally:
        if restarted is not None:
            restarted.stop()
        else:
            server.stop()


async def test_rejoin_by_run_id_after_restart_gets_exactly_the_missed_events(tmp_path):
    server = LiveServer(tmp_path / "data", env=PACED)
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        tid, "agent", input=human(CREATE), stream_mode=["updates", "messages-tuple"]
    )
    seen = []
    async for part in client.runs.join_stream(tid, run["run_id"]):
        seen.append(part)
        if part.event == "updates" and "tool_execute" in part.data:
            break
    server.kill()
    restarted = await asyncio.to_thread(LiveServer, server.data_dir, None, PACED)
    try:
        client = get_client(url=restarted.url)
        rest = [
            p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id=seen[-1].id)
        ]
        ids = [int(p.id) for p in seen + rest if p.id is not None]
        assert ids == list(range(1, len(ids) + 1))
        final = await client.runs.get(tid, run["run_id"])
        assert final["status"] == "success"
        assert task_rows(restarted.data_dir) == [("TASK-0001", "Quarterly review")]
        follow = await client.runs.wait(tid, "agent", input=human("list my tasks"))
        assert isinstance(follow, dict) and "TASK-0001" in follow["messages"][-1]["content"]
        check_integrity(restarted.data_dir)
    finally:
        restarted.stop()
