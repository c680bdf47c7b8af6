"""`taskagent mcp`: the official MCP client drives the real command over stdio and HTTP."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from server.mcp.server import is_local_origin
from tests.integration.conftest import REPO, free_port, offline_env

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-m", "server.cli", "mcp"]
KEYS = "alice-key:alice:write,bob-key:bob:read,carol-key:carol:write"
TASK_TOOLS = {
    "create_task",
    "list_tasks",
    "get_task",
    "update_task",
    "complete_task",
    "delete_task",
    "task_summary",
}


@asynccontextmanager
async def mcp_stdio(data_dir: Path, **env: str) -> AsyncIterator[Client]:
    """Spawn `taskagent mcp` with the offline engine and connect the SDK's stdio client."""
    params = StdioServerParameters(
        command=COMMAND[0], args=COMMAND[1:], cwd=REPO, env=offline_env(data_dir, **env)
    )
    async with Client(params, read_timeout_seconds=60) as client:
        yield client


def text_of(result: Any) -> str:
    return " ".join(block.text for block in result.content if block.type == "text")


def db_rows(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "tasks.sqlite") as conn:
        return conn.execute(sql, params).fetchall()


def task_titles(data_dir: Path) -> list[str]:
    return [row[0] for row in db_rows(data_dir, "SELECT title FROM tasks ORDER BY seq")]


# --- stdio, local mode (no keys: the local admin) ------------------------------------------


async def test_tools_are_listed_with_schemas_and_hints(tmp_path):
    async with mcp_stdio(tmp_path) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == TASK_TOOLS | {"ask_agent", "answer_approval"}
    create = tools["create_task"]
    assert create.description == "Create a task."
    assert create.input_schema["required"] == ["title"]
    assert create.input_schema["additionalProperties"] is False
    assert set(create.input_schema["properties"]["priority"]["enum"]) == {
        "low",
        "normal",
        "high",
        "urgent",
    }
    hints = {name: tool.annotations for name, tool in tools.items()}
    assert hints["delete_task"] and hints["delete_task"].destructive_hint is True
    assert hints["list_tasks"] and hints["list_tasks"].read_only_hint is True
    assert hints["create_task"] and hints["create_task"].destructive_hint is False
    ask = tools["ask_agent"]
    assert ask.input_schema["required"] == ["message"]
    assert ask.output_schema is not None
    assert {"answer", "thread_id", "tool_calls", "model_used", "pending_approval"} <= set(
        ask.output_schema["properties"]
    )
    assert set(tools["answer_approval"].input_schema["required"]) == {"thread_id", "approved"}


async def test_task_tools_change_the_database_and_are_audited_as_mcp(tmp_path):
    async with mcp_stdio(tmp_path) as client:
        created = await client.call_tool(
            "create_task", {"title": "Renew passport", "priority": "urgent", "due_date": "tomorrow"}
        )
        assert not created.is_error, text_of(created)
        task = created.structured_content["task"]
        assert (task["id"], task["priority"], task["status"]) == ("TASK-0001", "urgent", "pending")

        await client.call_tool("create_task", {"title": "Water the plants"})
        listed = await client.call_tool("list_tasks", {"priority": "urgent"})
        assert [t["title"] for t in listed.structured_content["tasks"]] == ["Renew passport"]

        done = await client.call_tool("complete_task", {"task_id": "task-0001"})
        assert done.structured_content["task"]["status"] == "completed"
        summary = await client.call_tool("task_summary", {})
        assert summary.structured_content["total"] == 2

        # MCP clients ask the user before a destructive call, so delete runs directly.
        deleted = await client.call_tool("delete_task", {"task_id": "TASK-0002"})
        assert deleted.structured_content["deleted"]["id"] == "TASK-0002"

        bad = await client.call_tool("create_task", {"title": "x", "priority": "asap"})
        assert bad.is_error
        assert "priority" in text_of(bad) and "urgent" in text_of(bad)
        unknown = await client.call_tool("create_task", {"title": "x", "colour": "red"})
        assert unknown.is_error and "colour" in text_of(unknown)
        missing = await client.call_tool("get_task", {"task_id": "TASK-0042"})
        assert missing.is_error and "TASK-0042 not found" in text_of(missing)

        # The server is still serving after the errors.
        assert (await client.call_tool("list_tasks", {})).structured_content["count"] == 1

    assert task_titles(tmp_path) == ["Renew passport"]
    audited = db_rows(
        tmp_path, "SELECT tool, user, success, detail FROM audit WHERE kind = 'tool' ORDER BY id"
    )
    assert [row[0] for row in audited] == [
        "create_task",
        "create_task",
        "list_tasks",
        "complete_task",
        "task_summary",
        "delete_task",
        "get_task",
        "list_tasks",
    ]
    assert all(row[1] == "local" and json.loads(row[3])["via"] == "mcp" for row in audited)
    assert audited[6][2] == 0  # the unknown task was a failed call


async def test_ask_agent_creates_a_task_and_continues_its_thread(tmp_path):
    async with mcp_stdio(tmp_path) as client:
        first = await client.call_tool(
            "ask_agent", {"message": "create a high priority task to call the bank tomorrow"}
        )
        assert not first.is_error, text_of(first)
        reply = first.structured_content
        assert reply["model_used"] == "offline-engine"
        assert "TASK-0001" in reply["answer"]
        assert [(c["tool"], c["ok"]) for c in reply["tool_calls"]] == [("create_task", True)]
        assert reply["pending_approval"] is None

        follow = await client.call_tool(
            "ask_agent", {"message": "list my tasks", "thread_id": reply["thread_id"]}
        )
        again = follow.structured_content
        assert again["thread_id"] == reply["thread_id"]
        assert [c["tool"] for c in again["tool_calls"]] == ["list_tasks"]
        assert "call the bank" in again["answer"].lower()

        unknown = await client.call_tool("ask_agent", {"message": "hi", "thread_id": "nope"})
        assert unknown.is_error and "Thread nope not found" in text_of(unknown)
        empty = await client.call_tool("ask_agent", {"message": ""})
        assert empty.is_error and "message" in text_of(empty)

    assert [t.lower() for t in task_titles(tmp_path)] == ["call the bank"]


async def test_deleting_through_the_agent_waits_for_approval(tmp_path):
    async with mcp_stdio(tmp_path) as client:
        await client.call_tool("create_task", {"title": "Old report"})
        asked = await client.call_tool("ask_agent", {"message": "delete TASK-0001"})
        reply = asked.structured_content
        thread = reply["thread_id"]
        approval = reply["pending_approval"]
        assert approval["question"] == 'Delete TASK-0001 "Old report"?'
        assert "answer_approval" in reply["next_step"]
        assert task_titles(tmp_path) == ["Old report"]

        blocked = await client.call_tool("ask_agent", {"message": "hello", "thread_id": thread})
        assert blocked.is_error and "is waiting for your answer" in text_of(blocked)

        refused = await client.call_tool(
            "answer_approval", {"thread_id": thread, "approved": False}
        )
        assert refused.structured_content["pending_approval"] is None
        assert task_titles(tmp_path) == ["Old report"]

        await client.call_tool("ask_agent", {"message": "delete TASK-0001", "thread_id": thread})
        approved = await client.call_tool(
            "answer_approval", {"thread_id": thread, "approved": True}
        )
        assert "Deleted TASK-0001" in approved.structured_content["answer"]
        assert task_titles(tmp_path) == []

        stale = await client.call_tool("answer_approval", {"thread_id": thread, "approved": True})
        assert stale.is_error and "not waiting" in text_of(stale)

    approvals = db_rows(tmp_path, "SELECT success FROM audit WHERE kind = 'approval' ORDER BY id")
    assert approvals == [(0,), (1,)]


def test_stdout_carries_only_protocol_messages(tmp_path):
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "ask_agent", "arguments": {"message": "add a task to buy milk"}},
        },
    ]
    # A file, not a pipe: DEBUG logs would fill a pipe nobody reads until the end.
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            COMMAND,
            cwd=REPO,
            env=offline_env(tmp_path, TASKAGENT_LOG_LEVEL="DEBUG"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        for request in requests:
            proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        proc.stdin.close()
        lines += proc.stdout.read().splitlines()
        assert proc.wait(timeout=30) == 0
    stderr = log_path.read_text()

    messages = [json.loads(line) for line in lines if line.strip()]
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    answer = next(m for m in messages if m.get("id") == 2)["result"]
    assert answer["structuredContent"]["tool_calls"][0]["tool"] == "create_task"
    # The logs went somewhere: stderr.
    assert "taskagent.audit" in stderr


# --- stdio with keys: identity, roles, isolation, refusal to start ---------------------------


async def test_roles_and_owners_are_enforced_like_the_http_api(tmp_path):
    async with mcp_stdio(tmp_path, TASKAGENT_API_KEYS=KEYS, TASKAGENT_API_KEY="alice-key") as alice:
        await alice.call_tool("create_task", {"title": "Alice's secret plan"})
        asked = await alice.call_tool("ask_agent", {"message": "list my tasks"})
        alice_thread = asked.structured_content["thread_id"]

    async with mcp_stdio(tmp_path, TASKAGENT_API_KEYS=KEYS, TASKAGENT_API_KEY="bob-key") as bob:
        refused = await bob.call_tool("create_task", {"title": "Bob was here"})
        assert refused.is_error
        assert "role (read) is not allowed to call create_task" in text_of(refused)
        assert (await bob.call_tool("list_tasks", {})).structured_content["count"] == 0

    async with mcp_stdio(tmp_path, TASKAGENT_API_KEYS=KEYS, TASKAGENT_API_KEY="carol-key") as carol:
        assert (await carol.call_tool("list_tasks", {})).structured_content["count"] == 0
        for name, args in [
            ("get_task", {"task_id": "TASK-0001"}),
            ("update_task", {"task_id": "TASK-0001", "title": "mine now"}),
            ("delete_task", {"task_id": "TASK-0001"}),
        ]:
            result = await carol.call_tool(name, args)
            assert result.is_error and "TASK-0001 not found" in text_of(result), name
        foreign = await carol.call_tool(
            "ask_agent", {"message": "list my tasks", "thread_id": alice_thread}
        )
        assert foreign.is_error and f"Thread {alice_thread} not found" in text_of(foreign)
        peek = await carol.call_tool("list_tasks", {"owner": "alice"})
        assert peek.is_error and "Only admins" in text_of(peek)

    assert task_titles(tmp_path) == ["Alice's secret plan"]
    denied = db_rows(tmp_path, "SELECT user, tool FROM audit WHERE kind = 'denied' ORDER BY id")
    assert denied == [("bob", "create_task"), ("carol", "list_tasks")]


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "needs yours: set TASKAGENT_API_KEY"), ("guess", "matches none of the configured")],
)
def test_a_missing_or_wrong_key_refuses_to_start(tmp_path, key, message):
    env = {"TASKAGENT_API_KEYS": KEYS, **({"TASKAGENT_API_KEY": key} if key else {})}
    done = subprocess.run(
        COMMAND,
        cwd=REPO,
        env=offline_env(tmp_path, **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
    assert db_rows(tmp_path, "SELECT kind, user FROM audit") == [("login_failed", "?")]


async def test_rate_limits_and_budgets_are_tool_errors_saying_when_to_retry(tmp_path):
    limits = {
        "TASKAGENT_API_KEY": "alice-key",
        "TASKAGENT_RATE_LIMIT_RPM": "4",
        "TASKAGENT_BUDGET_TOKENS_PER_USER_DAY": "1",
    }
    async with mcp_stdio(tmp_path, TASKAGENT_API_KEYS=KEYS, **limits) as client:
        assert not (await client.call_tool("list_tasks", {})).is_error
        # The first model call fits the budget; the turn stops when it is used up.
        cut_short = await client.call_tool("ask_agent", {"message": "add a task to one"})
        assert not cut_short.is_error, text_of(cut_short)
        assert [c["tool"] for c in cut_short.structured_content["tool_calls"]] == ["create_task"]
        assert "daily token budget" in cut_short.structured_content["answer"]

        refused = await client.call_tool("ask_agent", {"message": "add a task to two"})
        assert refused.is_error
        assert "daily token budget" in text_of(refused)
        assert "midnight UTC" in text_of(refused)

        assert not (await client.call_tool("list_tasks", {})).is_error
        limited = await client.call_tool("create_task", {"title": "three"})
        assert limited.is_error
        assert "Rate limit reached for alice: try again in" in text_of(limited)
        # Still serving: listing tools is not a tool call and is not limited.
        assert len((await client.list_tools()).tools) == 9

    assert [t.lower() for t in task_titles(tmp_path)] == ["one"]
    limited_rows = db_rows(
        tmp_path, "SELECT user, tool, detail FROM audit WHERE kind = 'rate_limit'"
    )
    assert [(user, tool, json.loads(detail)["via"]) for user, tool, detail in limited_rows] == [
        ("alice", "create_task", "mcp")
    ]


# --- streamable HTTP on loopback -------------------------------------------------------------


@contextmanager
def mcp_http(data_dir: Path, *args: str, **env: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*COMMAND, "--http", "--port", str(port), *args],
        cwd=REPO,
        env=offline_env(data_dir, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read() if proc.stdout else "exited")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_http_serves_keyed_callers_on_loopback_and_refuses_foreign_origins(tmp_path):
    with mcp_http(tmp_path, TASKAGENT_API_KEYS=KEYS) as url:
        alice_http = create_mcp_http_client(headers={"Authorization": "Bearer alice-key"})
        async with alice_http, Client(streamable_http_client(url, http_client=alice_http)) as alice:
            created = await alice.call_tool("create_task", {"title": "Over HTTP"})
            assert created.structured_content["task"]["id"] == "TASK-0001"
            asked = await alice.call_tool("ask_agent", {"message": "list my tasks"})
            assert "Over HTTP" in asked.structured_content["answer"]

        carol_http = create_mcp_http_client(headers={"X-Api-Key": "carol-key"})
        async with carol_http, Client(streamable_http_client(url, http_client=carol_http)) as carol:
            assert (await carol.call_tool("list_tasks", {})).structured_content["count"] == 0

        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
        accept = {"Accept": "application/json, text/event-stream"}
        with httpx.Client(timeout=10) as http:
            foreign = http.post(
                url,
                json=initialize,
                headers={
                    **accept,
                    "Authorization": "Bearer alice-key",
                    "Origin": "https://evil.example",
                },
            )
            assert foreign.status_code == 403
            rebound = http.post(
                url,
                json=initialize,
                headers={**accept, "Authorization": "Bearer alice-key", "Host": "evil.example"},
            )
            assert rebound.status_code == 400
            assert "TASKAGENT_ALLOWED_HOSTS" in rebound.json()["detail"]
            unkeyed = http.post(url, json=initialize, headers=accept)
            assert unkeyed.status_code == 401
            assert "Missing or invalid API key" in unkeyed.json()["detail"]
            local_page = http.post(
                url,
                json=initialize,
                headers={
                    **accept,
                    "Authorization": "Bearer alice-key",
                    "Origin": "http://localhost:3000",
                },
            )
            assert local_page.status_code == 200

    assert task_titles(tmp_path) == ["Over HTTP"]
    assert db_rows(tmp_path, "SELECT count(*) FROM audit WHERE kind = 'login_failed'") == [(1,)]


@pytest.mark.parametrize(
    ("origin", "local"),
    [
        ("http://localhost:3000", True),
        ("http://127.0.0.1", True),
        ("https://[::1]:8443", True),
        ("http://localhost.evil.example", False),
        ("http://127.0.0.1.evil.example:80", False),
        ("https://evil.example", False),
        ("null", False),
    ],
)
def test_only_pages_served_from_this_machine_count_as_local_origins(origin, local):
    assert is_local_origin(origin) is local


def test_http_refuses_to_bind_beyond_loopback(tmp_path):
    done = subprocess.run(
        [*COMMAND, "--http", "--host", "0.0.0.0"],
        cwd=REPO,
        env=offline_env(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to bind 0.0.0.0" in done.stderr
