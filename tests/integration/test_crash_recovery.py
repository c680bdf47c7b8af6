"""kill -9 at any point of a turn: no acknowledged turn is lost, no tool side effect happens twice.

Each step runs `crash_harness.py` in its own process on the same data dir, with only the
offline engine; the harness SIGKILLs itself at the chosen point. Between steps the test reads
the SQLite files read-only, as an operator would after a crash.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("crash_harness.py")
CREATE = "Create a high-priority task for the quarterly review due next Friday"
FOLLOW_UP = "list my tasks"

# Where each crash leaves the run: the node the resumed run starts from, and whether the
# task (with its stored tool result) was already committed when the process died.
POINTS = {
    "before_tool_commit": (["tool_execute"], False),
    "after_tool_commit": (["tool_execute"], True),
    "mid_answer": (["model_call"], True),
    "after_ack": ([], True),
}


def harness_env() -> dict[str, str]:
    """A fresh install's environment: no model server configured, strict msgpack."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OLLAMA_", "OPENAI_", "TASKAGENT_"))
    }
    env["LANGGRAPH_STRICT_MSGPACK"] = "true"
    return env


@dataclass
class Output:
    """What one harness process printed, line by line."""

    lines: list[str]

    def values(self, tag: str) -> list[str]:
        return [line[len(tag) + 1 :] for line in self.lines if line.startswith(tag + " ")]

    def one(self, tag: str) -> str:
        values = self.values(tag)
        assert len(values) == 1, f"expected one {tag} line, got {values}"
        return values[0]

    def events(self) -> list[tuple[str, Any]]:
        kinds = [value.split(" ", 1) for value in self.values("EVENT")]
        return [(kind, json.loads(data)) for kind, data in kinds]

    def answer(self) -> tuple[str, str]:
        thread_id, answer = self.one("ACK").split(" ", 1)
        return thread_id, json.loads(answer)

    def history(self) -> list[dict[str, Any]]:
        return list(json.loads(self.one("HISTORY")))


def run_harness(data_dir: Path, *args: str, killed: bool = False) -> Output:
    proc = subprocess.run(
        [sys.executable, str(HARNESS), "--data-dir", str(data_dir), *args],
        cwd=REPO,
        env=harness_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = -signal.SIGKILL if killed else 0
    assert proc.returncode == expected, (
        f"harness {args} exited {proc.returncode}, expected {expected}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return Output(proc.stdout.splitlines())


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run `sql` on a read-only connection (the harness must have left a readable database)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def assert_intact(data_dir: Path) -> None:
    for name in ("checkpoints.sqlite", "tasks.sqlite"):
        assert query(data_dir / name, "PRAGMA integrity_check") == [("ok",)], name


def tasks(data_dir: Path) -> list[tuple[Any, ...]]:
    return query(data_dir / "tasks.sqlite", "SELECT id, title, priority FROM tasks ORDER BY seq")


def tool_results(data_dir: Path) -> list[tuple[Any, ...]]:
    return query(data_dir / "tasks.sqlite", "SELECT call_id, tool FROM tool_results ORDER BY rowid")


def checkpoints(data_dir: Path, thread_id: str) -> int:
    rows = query(
        data_dir / "checkpoints.sqlite",
        "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?",
        thread_id,
    )
    return int(rows[0][0])


def assert_create_turn_once(history: list[dict[str, Any]], data_dir: Path) -> None:
    """The first turn is in the thread exactly once, answered, and its call ran exactly once."""
    assert [m["type"] for m in history[:4]] == ["human", "ai", "tool", "ai"], history
    human, call_message, tool_message, answer = history[:4]
    assert human["content"] == CREATE
    assert [call["name"] for call in call_message["tool_calls"]] == ["create_task"]
    call_id = call_message["tool_calls"][0]["id"]
    assert tool_message["tool_call_id"] == call_id
    assert json.loads(tool_message["content"])["task"]["id"] == "TASK-0001"
    assert "TASK-0001" in answer["content"] and not answer["tool_calls"]
    assert sum(m["type"] == "human" and m["content"] == CREATE for m in history) == 1
    assert tasks(data_dir) == [("TASK-0001", "Quarterly review", "high")]
    assert tool_results(data_dir) == [(call_id, "create_task")]
    audited = query(
        data_dir / "tasks.sqlite", "SELECT tool_call_id, tool FROM audit WHERE kind = 'tool'"
    )
    assert (call_id, "create_task") in audited  # executed once, audited once
    assert sum(row[0] == call_id for row in audited) == 1


@pytest.mark.parametrize("point", list(POINTS))
def test_a_turn_killed_at_any_point_completes_exactly_once(tmp_path: Path, point: str) -> None:
    data = tmp_path / "data"
    pending, committed = POINTS[point]

    crashed = run_harness(data, "--message", CREATE, "--crash-at", point, killed=True)
    assert crashed.values("CRASH") == [point]
    thread_id = crashed.one("THREAD")
    if point == "after_ack":
        acked_thread, acked_answer = crashed.answer()
        assert acked_thread == thread_id and "TASK-0001" in acked_answer
    else:
        assert crashed.values("ACK") == []  # the turn was never acknowledged
    if point == "mid_answer":
        after_result = [kind for kind, _ in crashed.events()]
        after_result = after_result[after_result.index("tool_result") + 1 :]
        assert after_result == ["token", "token"]  # died while streaming the answer

    # What the kill left behind: consistent files, the side effect all or nothing.
    assert_intact(data)
    expected_tasks = [("TASK-0001", "Quarterly review", "high")] if committed else []
    assert tasks(data) == expected_tasks
    assert len(tool_results(data)) == len(expected_tasks)
    checkpoints_at_crash = checkpoints(data, thread_id)

    resumed = run_harness(data, "--thread", thread_id, "--resume")
    assert json.loads(resumed.one("PENDING")) == pending
    resumed_thread, answer = resumed.answer()
    assert resumed_thread == thread_id and "TASK-0001" in answer
    history = resumed.history()
    assert len(history) == 4 and history[-1]["content"] == answer
    assert_create_turn_once(history, data)
    if point == "after_ack":
        # The acknowledged turn is intact and nothing ran again.
        assert answer == acked_answer
        assert [kind for kind, _ in resumed.events()] == ["metadata", "done"]
        assert checkpoints(data, thread_id) == checkpoints_at_crash
    else:
        assert checkpoints(data, thread_id) > checkpoints_at_crash

    follow_up = run_harness(data, "--thread", thread_id, "--message", FOLLOW_UP)
    _, listing = follow_up.answer()
    assert "TASK-0001" in listing and "Quarterly review" in listing
    history = follow_up.history()
    assert [m["type"] for m in history[4:]] == ["human", "ai", "tool", "ai"]
    assert history[4]["content"] == FOLLOW_UP
    assert_create_turn_once(history, data)
    assert_intact(data)


def test_the_next_message_first_finishes_a_turn_cut_off_after_its_tool_committed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    crashed = run_harness(data, "--message", CREATE, "--crash-at", "after_tool_commit", killed=True)
    thread_id = crashed.one("THREAD")

    # No explicit resume: the user simply writes again.
    follow_up = run_harness(data, "--thread", thread_id, "--message", FOLLOW_UP)
    _, listing = follow_up.answer()
    assert "TASK-0001" in listing
    history = follow_up.history()
    assert [m["type"] for m in history] == ["human", "ai", "tool", "ai"] * 2
    assert history[4]["content"] == FOLLOW_UP
    assert_create_turn_once(history, data)
    assert_intact(data)
