"""Exactly-once tool results are keyed by the run, not by the model's tool call id.

Real OpenAI-compatible providers reuse tool call ids ("create_task:0" in every reply). The
server runs on loopback with two keyed users and a fake OpenAI server that gives every call
such an id; the database, not the answers, says whether each user's own write happened.
A replay of the same call after kill -9 is covered by tests/integration/test_crash_recovery.py
and tests/faults/test_kill_points.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.obedient import ObedientOpenAIServer
from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

KEYS = {"alice": "k-alice-5b1e", "bob": "k-bob-93c7"}


def rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of tasks.sqlite, read through a read-only connection of our own."""
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def model() -> Iterator[ObedientOpenAIServer]:
    with ObedientOpenAIServer() as server:
        server.call_id_format = "{name}:{index}"
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model: ObedientOpenAIServer
) -> Iterator[LiveServer]:
    keys = ",".join(f"{key}:{user}:write" for user, key in KEYS.items())
    live = LiveServer(
        tmp_path_factory.mktemp("identity") / "data",
        env={
            "TASKAGENT_API_KEYS": keys,
            "OPENAI_BASE_URL": model.base_url,
            "OPENAI_MODEL": "obedient",
        },
    )
    yield live
    live.stop()


def chat(server: LiveServer, user: str, message: str, thread: str | None = None) -> str:
    body = {"message": message, **({"thread_id": thread} if thread else {})}
    reply = httpx.post(
        f"{server.url}/chat", json=body, headers={"X-Api-Key": KEYS[user]}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["model_used"].startswith("openai"), data
    return str(data["thread_id"])


def test_colliding_tool_call_ids_across_users_threads_and_turns_each_run(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    for title in ("Milk", "Bread", "Eggs", "Jam"):
        model.teach(f"add {title.lower()}", [("create_task", {"title": title})])

    alice_thread = chat(server, "alice", "add milk")
    chat(server, "bob", "add bread")  # another user, the same id "create_task:0"
    chat(server, "alice", "add eggs")  # another thread of the same user
    chat(server, "alice", "add jam", alice_thread)  # a later turn on the same thread

    tasks = rows(
        server.data_dir,
        "SELECT owner, title FROM tasks WHERE title IN ('Milk', 'Bread', 'Eggs', 'Jam')"
        " ORDER BY seq",
    )
    assert tasks == [("alice", "Milk"), ("bob", "Bread"), ("alice", "Eggs"), ("alice", "Jam")]
    audited = rows(
        server.data_dir,
        "SELECT user, tool_call_id, success FROM audit WHERE kind = 'tool'"
        " AND tool_call_id = 'create_task:0' ORDER BY id",
    )
    assert audited == [
        ("alice", "create_task:0", 1),
        ("bob", "create_task:0", 1),
        ("alice", "create_task:0", 1),
        ("alice", "create_task:0", 1),
    ]
    stored = rows(
        server.data_dir,
        "SELECT owner, call_id FROM tool_results WHERE call_id = 'create_task:0' ORDER BY rowid",
    )
    assert stored == [(u, "create_task:0") for u in ("alice", "bob", "alice", "alice")]


def test_two_calls_with_one_id_in_one_message_both_run(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    model.call_id_format = "call"  # a constant id, as some local servers send
    model.teach(
        "add both", [("create_task", {"title": "Left"}), ("create_task", {"title": "Right"})]
    )
    try:
        chat(server, "bob", "add both")
    finally:
        model.call_id_format = "{name}:{index}"
    assert rows(
        server.data_dir,
        "SELECT owner, title FROM tasks WHERE title IN ('Left', 'Right') ORDER BY seq",
    ) == [("bob", "Left"), ("bob", "Right")]
    audited = "SELECT COUNT(*) FROM audit WHERE kind = 'tool' AND tool_call_id = 'call'"
    assert rows(server.data_dir, audited) == [(2,)]


def test_a_store_from_before_keeps_its_rows_and_takes_new_calls(tmp_path: Path) -> None:
    """A tasks.sqlite written by the previous version opens, keeps its rows, reuses no result."""
    data = tmp_path / "data"
    data.mkdir()
    with closing(sqlite3.connect(data / "tasks.sqlite")) as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO tool_results VALUES ('create_task:0', 'alice', 'create_task',"
            ' \'{"title": "Old"}\', \'{"ok": true, "task": {"id": "TASK-0001"}}\', \'x\')'
        )
        db.execute(
            "INSERT INTO audit (ts, kind, user, tool_call_id) VALUES ('x', 'tool', 'alice',"
            " 'create_task:0')"
        )
        db.commit()
    with ObedientOpenAIServer() as model:
        model.call_id_format = "{name}:{index}"
        model.teach("add milk", [("create_task", {"title": "Milk"})])
        live = LiveServer(
            data,
            env={
                "TASKAGENT_API_KEYS": f"{KEYS['bob']}:bob:write",
                "OPENAI_BASE_URL": model.base_url,
                "OPENAI_MODEL": "obedient",
            },
        )
        try:
            chat(live, "bob", "add milk")
        finally:
            live.stop()
    assert rows(data, "SELECT owner, title FROM tasks") == [("bob", "Milk")]
    assert rows(data, "SELECT call_key, owner FROM tool_results ORDER BY rowid")[0] == (
        "legacy:create_task:0",
        "alice",
    )
    assert rows(data, "SELECT user FROM audit WHERE tool_call_id = 'create_task:0'") == [
        ("alice",),
        ("bob",),
    ]
    # Each store records the schema version it reached (the re-keying was its step 1).
    assert dict(rows(data, "SELECT store, version FROM schema_versions")) == {
        "tasks": 1,
        "tool_results": 2,
        "archive": 1,
        "audit": 3,
        "usage": 1,
        "threads": 3,
    }


OLD_SCHEMA = """
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,
    title TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed')),
    due_date TEXT, tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, completed_at TEXT
);
CREATE TABLE tool_results (
    call_id TEXT PRIMARY KEY, owner TEXT NOT NULL, tool TEXT NOT NULL,
    arguments TEXT NOT NULL, result TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, kind TEXT NOT NULL,
    user TEXT NOT NULL, role TEXT NOT NULL DEFAULT '', thread_id TEXT NOT NULL DEFAULT '',
    run_id TEXT NOT NULL DEFAULT '', step INTEGER NOT NULL DEFAULT 0,
    tool TEXT NOT NULL DEFAULT '', tool_call_id TEXT NOT NULL DEFAULT '',
    arguments TEXT NOT NULL DEFAULT '{}', result_summary TEXT NOT NULL DEFAULT '',
    success INTEGER NOT NULL DEFAULT 1, error TEXT NOT NULL DEFAULT '',
    latency_ms REAL NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX audit_once ON audit (kind, tool_call_id) WHERE tool_call_id != '';
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""
