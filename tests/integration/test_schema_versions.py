"""Versioned schemas: a data dir written before versions opens with every row, newer ones refuse.

The data dir is built here with the DDL the previous release ran (plain CREATE TABLE IF NOT
EXISTS scripts, no recorded versions) and one row in every table; the real server starts on
it and the user sees their task, thread and audit trail, then new work carries on beside them.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.runs.threads import ThreadIndex
from tests.integration.conftest import LiveServer
from tools.store import TaskStore

pytestmark = pytest.mark.integration

ROOT = {"X-Api-Key": "k-root-4f1d"}

# What tasks.sqlite held before versioned schemas (tools/store.py, tools/audit.py,
# tools/usage.py and server/runs/threads.py as of df023d8), triggers left out.
PREVIOUS_SCHEMA = """
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
    title TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed')),
    due_date TEXT, tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, completed_at TEXT
);
CREATE INDEX tasks_owner ON tasks (owner, status, due_date);
CREATE TABLE tool_results (
    call_key TEXT PRIMARY KEY, call_id TEXT NOT NULL, thread_id TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL, tool TEXT NOT NULL, arguments TEXT NOT NULL, result TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE approvals_shown (
    step_key TEXT NOT NULL, position INTEGER NOT NULL, approval_id TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (step_key, position)
);
CREATE TABLE message_archive (
    thread_id TEXT NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL,
    message TEXT NOT NULL, PRIMARY KEY (thread_id, message_id)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, kind TEXT NOT NULL,
    user TEXT NOT NULL, role TEXT NOT NULL DEFAULT '', thread_id TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL DEFAULT '', step INTEGER NOT NULL DEFAULT 0,
    tool TEXT NOT NULL DEFAULT '', tool_call_id TEXT NOT NULL DEFAULT '',
    arguments TEXT NOT NULL DEFAULT '{}', result_summary TEXT NOT NULL DEFAULT '',
    success INTEGER NOT NULL DEFAULT 1, error TEXT NOT NULL DEFAULT '',
    latency_ms REAL NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '{}', call_key TEXT NOT NULL DEFAULT ''
);
CREATE TABLE usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, day TEXT NOT NULL,
    user TEXT NOT NULL, thread_id TEXT NOT NULL, run_id TEXT NOT NULL, tier TEXT NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL, estimated INTEGER NOT NULL
);
CREATE TABLE threads (
    thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'idle'
        CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    interrupt TEXT, history_floor TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
PRAGMA user_version = 1;
"""

OLD_ROWS = """
INSERT INTO tasks (id, owner, title, priority, status, created_at, updated_at)
    VALUES ('TASK-0001', 'root', 'Pay rent', 'high', 'pending', '2026-11-01', '2026-11-01');
INSERT INTO tool_results VALUES ('["t", "", 0, "c1"]', 'c1', 'old-thread', 'root',
    'create_task', '{}', '{"ok": true}', '2026-11-01');
INSERT INTO approvals_shown VALUES ('step-1', 0, 'approval-1', '2026-11-01');
INSERT INTO message_archive VALUES ('old-thread', 'm1', 1, '{"type": "human"}');
INSERT INTO audit (ts, kind, user, tool) VALUES ('2026-11-01T00:00:00', 'tool', 'root',
    'create_task');
INSERT INTO usage (ts, day, user, thread_id, run_id, tier, input_tokens, output_tokens, tokens,
    cost_usd, estimated) VALUES ('2026-11-01', '2026-11-01', 'root', 'old-thread', 'r1',
    'offline', 10, 5, 15, 0, 1);
INSERT INTO threads (thread_id, owner, title, created_at, updated_at)
    VALUES ('old-thread', 'root', 'Rent talk', '2026-11-01', '2026-11-01');
"""

TABLES = (
    "tasks",
    "tool_results",
    "approvals_shown",
    "message_archive",
    "audit",
    "usage",
    "threads",
)


def previous_data_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    with closing(sqlite3.connect(path / "tasks.sqlite")) as db:
        db.executescript(PREVIOUS_SCHEMA + OLD_ROWS)
        db.commit()
    return path


def rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return db.execute(sql).fetchall()


def test_a_data_dir_from_before_versions_opens_with_every_row(tmp_path: Path) -> None:
    data = previous_data_dir(tmp_path / "data")
    live = LiveServer(data, env={"TASKAGENT_API_KEYS": f"{ROOT['X-Api-Key']}:root:admin"})
    try:
        listed = httpx.get(f"{live.url}/tasks", headers=ROOT, timeout=30).json()
        assert [(t["id"], t["title"]) for t in listed["tasks"]] == [("TASK-0001", "Pay rent")]
        threads = httpx.get(f"{live.url}/chat/threads", headers=ROOT, timeout=30).json()
        assert [(t["thread_id"], t["title"]) for t in threads] == [("old-thread", "Rent talk")]
        trail = httpx.get(f"{live.url}/audit", headers=ROOT, timeout=30).json()
        assert ("tool", "create_task") in [(r["kind"], r["tool"]) for r in trail]
        created = httpx.post(
            f"{live.url}/tasks", json={"title": "Call the landlord"}, headers=ROOT, timeout=30
        )
        assert created.status_code == 201, created.text
        assert created.json()["id"] == "TASK-0002"
    finally:
        live.stop()
    for table in TABLES:
        assert rows(data, f"SELECT COUNT(*) FROM {table}")[0][0] >= 1, table
    assert dict(rows(data, "SELECT store, version FROM schema_versions")) == {
        "tasks": 1,
        "tool_results": 2,
        "archive": 1,
        "audit": 3,
        "usage": 1,
        "threads": 3,
    }


async def test_a_file_from_a_newer_version_is_refused_in_one_line_and_left_alone(
    tmp_path: Path,
) -> None:
    data = previous_data_dir(tmp_path / "data")
    store = await TaskStore.open(data / "tasks.sqlite")
    await store.close()
    with closing(sqlite3.connect(data / "tasks.sqlite")) as db:
        db.execute("UPDATE schema_versions SET version = 7 WHERE store = 'audit'")
        db.execute("INSERT OR REPLACE INTO schema_versions VALUES ('threads', 4)")
        db.commit()
    before = rows(data, "SELECT * FROM schema_versions ORDER BY store")

    with pytest.raises(RuntimeError) as refused:
        await TaskStore.open(data / "tasks.sqlite")
    assert str(refused.value) == (
        "The audit tables are at schema version 7, newer than this version of taskagent"
        " knows (3); upgrade taskagent."
    )
    with pytest.raises(RuntimeError, match="The threads tables are at schema version 4"):
        await ThreadIndex.open(data / "tasks.sqlite", busy_timeout_ms=1000, synchronous="NORMAL")
    assert rows(data, "SELECT * FROM schema_versions ORDER BY store") == before
    assert rows(data, "SELECT id FROM tasks") == [("TASK-0001",)]
