"""The seeds' seven named safety tests, each judged by what the user (or the operator) sees.

They run the real graph on a real SQLite saver and task store (the `open_engine` fixture);
only the language models are scripted, as in tests/unit/test_graph.py. Faults are injected
where the seeds ask for them: a store method made slow, a model that raises a transient
connection error, a tier that keeps failing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import AIMessage, ToolMessage

from graph.context import Context
from server.runs.engine import RunManager
from tests.fakes.chat_models import ScriptedChatModel, tool_call
from tools.store import TaskStore

WRITER = Context(user_id="alice", role="write")
READER = Context(user_id="alice", role="read")  # the same user, holding a read-only key

# The fields every audit row carries (the seeds' list, in the column names of `audit`).
SEED_AUDIT_FIELDS = {
    "ts",
    "user",
    "thread_id",
    "run_id",
    "step",
    "tool",
    "arguments",
    "result_summary",
    "success",
    "error",
    "latency_ms",
    "cost_usd",
}


def db_rows(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows read through a read-only connection of our own, not the store's."""
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return db.execute(sql, params).fetchall()


def tool_messages(state_values: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state_values["messages"] if isinstance(m, ToolMessage)]


async def thread_state(engine: RunManager, thread_id: str) -> dict[str, Any]:
    snapshot = await engine.runner.graph.aget_state({"configurable": {"thread_id": thread_id}})
    return dict(snapshot.values)


# --------------------------------------------------------------------------- 1


async def test_max_iterations(open_engine, tmp_path):
    """A model that never stops calling tools is stopped at the limit with a partial answer."""
    script = [tool_call("list_tasks", {"limit": n}, f"loop-{n}") for n in range(1, 20)]
    model = ScriptedChatModel(script=script)
    engine = await open_engine(("openai", model), max_model_calls=3)

    result = await engine.run_turn(context=WRITER, message="keep looking at my tasks")

    assert len(model.calls) == 3  # the limit, not the length of the script
    assert "stopped" in result.message and "3 model steps" in result.message
    assert "list_tasks" in result.message  # the partial answer says what was done
    assert result.interrupt is None
    executed = [c for c in result.tool_calls if c["result"]["ok"]]
    refused = [c for c in result.tool_calls if not c["result"]["ok"]]
    assert [c["arguments"]["limit"] for c in executed] == [1, 2]
    assert [c["arguments"]["limit"] for c in refused] == [3]
    assert "Not executed" in refused[0]["result"]["error"]
    # The thread is not stuck: the next turn starts with a fresh step budget.
    model.script[:] = ["Here you are."]
    again = await engine.run_turn(
        context=WRITER, message="thanks, what now?", thread_id=result.thread_id
    )
    assert again.message == "Here you are."


# --------------------------------------------------------------------------- 2


async def test_timeout_on_slow_tool(open_engine, monkeypatch):
    """A tool slower than TASKAGENT_TOOL_TIMEOUT_S becomes a clear error; the turn answers."""
    released = asyncio.Event()

    async def slow_find(self: TaskStore, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        try:
            await asyncio.sleep(30)  # fault injection: the database hangs
        finally:
            released.set()
        return []

    monkeypatch.setattr(TaskStore, "find", slow_find)
    model = ScriptedChatModel(
        script=[
            tool_call("list_tasks", {"status": "pending"}, "slow-1"),
            lambda messages: AIMessage(content=f"Sorry: {json.loads(messages[-1].text)['error']}"),
        ]
    )
    engine = await open_engine(("openai", model), tool_timeout_s=0.3)

    started = time.perf_counter()
    result = await engine.run_turn(context=WRITER, message="what is pending?")
    elapsed = time.perf_counter() - started

    assert elapsed < 10, "the turn waited for the slow tool instead of timing it out"
    assert released.is_set()  # the slow call was cancelled, not left running
    assert result.tool_calls[0]["result"] == {
        "ok": False,
        "error": "list_tasks timed out after 0.3s.",
    }
    assert result.message == "Sorry: list_tasks timed out after 0.3s."
    [reply] = tool_messages(await thread_state(engine, result.thread_id))
    assert reply.status == "error" and reply.tool_call_id == "slow-1"


async def test_timeout_on_slow_tool_is_audited(open_engine, monkeypatch):
    """The timed-out call is a tool execution too: one audit row, failed, saying why."""

    async def slow_find(self: TaskStore, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        await asyncio.sleep(30)
        return []

    monkeypatch.setattr(TaskStore, "find", slow_find)
    model = ScriptedChatModel(script=[tool_call("list_tasks", {}, "slow-2"), "It timed out."])
    engine = await open_engine(("openai", model), tool_timeout_s=0.3)

    result = await engine.run_turn(context=WRITER, message="list my tasks")

    rows = [
        r for r in await engine.runner.services.tasks.audit_rows() if r["tool_call_id"] == "slow-2"
    ]
    assert [(r["kind"], r["success"]) for r in rows] == [("tool", False)], (
        "a tool call that timed out left no audit row"
    )
    assert "timed out" in rows[0]["error"] and rows[0]["run_id"] == result.run_id


# --------------------------------------------------------------------------- 3


async def test_retry_on_transient_failure(open_engine):
    """A refused connection is retried on the same tier, which then answers."""
    flaky = ScriptedChatModel(script=[httpx.ConnectError("connection refused"), "All good."])
    backup = ScriptedChatModel(script=[])
    engine = await open_engine(("openai", flaky), ("offline", backup), model_max_attempts=3)

    result = await engine.run_turn(context=WRITER, message="anything due today?")

    assert result.message == "All good."
    assert result.model_used == "openai:scripted" and result.fallback_used is False
    assert result.failures == []
    assert len(flaky.calls) == 2 and backup.calls == []
    breaker = engine.runner.services.tiers[0].breaker
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


# --------------------------------------------------------------------------- 4


async def test_circuit_breaker_opens(open_engine):
    """After `threshold` failures the tier is skipped; after the cooldown one trial closes it."""
    dead = ScriptedChatModel(script=[httpx.ConnectError("refused")] * 3 + ["I am back."])
    backup = ScriptedChatModel(script=["backup one", "backup two"])
    engine = await open_engine(
        ("ollama", dead),
        ("offline", backup),
        breaker_threshold=3,
        breaker_cooldown_s=1.5,
        model_max_attempts=3,
    )
    breaker = engine.runner.services.tiers[0].breaker

    first = await engine.run_turn(context=WRITER, message="first question")
    assert first.message.endswith("— unreachable — so offline:scripted answered.)\n\nbackup one")
    assert first.fallback_used
    assert "ConnectError" in first.failures[0]
    assert breaker.state == "open" and len(dead.calls) == 3

    second = await engine.run_turn(context=WRITER, message="second question")
    assert second.message.endswith(
        "— circuit open after repeated failures — so offline:scripted answered.)\n\nbackup two"
    )
    assert second.model_used == "offline:scripted"
    assert "CircuitOpenError" in second.failures[0]
    assert len(dead.calls) == 3  # the open breaker kept the turn away from the dead tier

    deadline = time.monotonic() + 10
    while breaker.state == "open" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the cooldown
    assert breaker.state == "half_open"
    third = await engine.run_turn(context=WRITER, message="third question")
    assert third.message == "I am back." and third.fallback_used is False
    assert breaker.state == "closed" and len(dead.calls) == 4


# --------------------------------------------------------------------------- 5


async def test_unauthorized_tool_blocked(open_engine, tmp_path):
    """A read-role run whose model asks to delete gets a denial; nothing changes; audited."""
    model = ScriptedChatModel(
        script=[
            tool_call("create_task", {"title": "Keep me"}, "make-1"),
            "Created.",
            tool_call("delete_task", {"task_id": "TASK-0001"}, "evil-1"),
            "I could not delete it.",
        ]
    )
    engine = await open_engine(("openai", model))
    made = await engine.run_turn(context=WRITER, message="add keep me")
    assert made.tool_calls[0]["result"]["ok"] is True
    tables = ("tasks", "tool_results")
    before = {t: db_rows(tmp_path, f"SELECT * FROM {t} ORDER BY 1") for t in tables}

    result = await engine.run_turn(context=READER, message="delete TASK-0001")

    assert result.interrupt is None  # not even asked: the role may not delete at all
    [denied] = result.tool_calls
    assert denied["tool"] == "delete_task"
    assert denied["result"] == {
        "ok": False,
        "error": "Your role (read) is not allowed to call delete_task.",
    }
    assert result.message == "I could not delete it."
    after = {t: db_rows(tmp_path, f"SELECT * FROM {t} ORDER BY 1") for t in tables}
    assert after == before
    [reply] = [
        m
        for m in tool_messages(await thread_state(engine, result.thread_id))
        if m.tool_call_id == "evil-1"
    ]
    assert reply.status == "error"
    rows = db_rows(
        tmp_path,
        "SELECT kind, user, role, tool, tool_call_id, success, error, thread_id, run_id"
        " FROM audit WHERE tool_call_id = 'evil-1'",
    )
    assert rows == [
        (
            "denied",
            "alice",
            "read",
            "delete_task",
            "evil-1",
            0,
            "Your role (read) is not allowed to call delete_task.",
            result.thread_id,
            result.run_id,
        )
    ]


# --------------------------------------------------------------------------- 6


async def test_cost_limit_enforced(open_engine, tmp_path):
    """Over the token budget: a clear refusal, and no model call after the limit."""
    model = ScriptedChatModel(
        script=[
            tool_call("list_tasks", {}, "spend-1"),
            "never: the budget is used up before this call",
            "never either",
        ]
    )
    # The system prompt alone is well over 50 tokens: the first call uses the budget up.
    engine = await open_engine(("openai", model), budget_tokens_per_thread=50)

    first = await engine.run_turn(context=WRITER, message="show my tasks")

    assert len(model.calls) == 1  # the call that crossed the limit, and no other
    assert first.model_used == "budget"
    assert first.message.startswith("I can't continue: this conversation's token budget")
    assert "is used up" in first.message
    assert first.tool_calls[0]["result"]["ok"] is True  # the work done before the limit stays
    spent = db_rows(
        tmp_path, "SELECT COUNT(*), SUM(tokens) FROM usage WHERE thread_id = ?", (first.thread_id,)
    )
    assert spent[0][0] == 1 and spent[0][1] >= 50

    again = await engine.run_turn(context=WRITER, message="and now?", thread_id=first.thread_id)
    assert again.model_used == "budget" and "token budget" in again.message
    assert len(model.calls) == 1
    refusals = db_rows(
        tmp_path,
        "SELECT user, success, error FROM audit WHERE kind = 'budget' AND success = 0"
        " AND thread_id = ?",
        (first.thread_id,),
    )
    assert len(refusals) == 2 and all(r[0] == "alice" and "used up" in r[2] for r in refusals)

    # A fresh thread still gets its own budget; the per-user daily budget is separate.
    model.script[:] = ["A new conversation."]
    fresh = await engine.run_turn(context=WRITER, message="hello again, new topic")
    assert fresh.message == "A new conversation." and len(model.calls) == 2


async def test_cost_limit_enforced_per_user_day(open_engine):
    """The daily budget of a user spans threads; other users are not affected."""
    model = ScriptedChatModel(script=["one", "bob's answer"])
    engine = await open_engine(
        ("openai", model), budget_tokens_per_thread=0, budget_tokens_per_user_day=50
    )
    await engine.run_turn(context=WRITER, message="first thread")
    other = await engine.run_turn(context=WRITER, message="a second thread")
    assert other.model_used == "budget" and "daily token budget" in other.message
    assert len(model.calls) == 1
    bob = await engine.run_turn(context=Context(user_id="bob", role="write"), message="hi bob here")
    assert bob.message == "bob's answer"  # bob's budget is his own: the model answers him


# --------------------------------------------------------------------------- 7


async def test_audit_log_written(open_engine, tmp_path):
    """One tool call, one audit row, with every field the seeds list."""
    args = {"title": "Quarterly review", "priority": "high"}
    model = ScriptedChatModel(
        script=[
            tool_call("create_task", args, "audit-1"),
            "Created TASK-0001.",
            tool_call("complete_task", {"task_id": "TASK-0042"}, "audit-2"),
            "There is no TASK-0042.",
        ]
    )
    engine = await open_engine(("openai", model))
    before = datetime.now(UTC).replace(microsecond=0)

    result = await engine.run_turn(
        context=WRITER, message="create the quarterly review, high priority"
    )

    rows = await engine.runner.services.tasks.audit_rows(kind="tool")
    assert len(rows) == 1
    [row] = rows
    assert SEED_AUDIT_FIELDS <= set(row)
    ts = datetime.fromisoformat(row["ts"])
    assert before <= ts <= datetime.now(UTC) + timedelta(seconds=1)
    assert row["user"] == "alice" and row["role"] == "write"
    assert row["thread_id"] == result.thread_id and row["run_id"] == result.run_id
    assert row["step"] == 1  # after the first model call of the turn
    assert row["tool"] == "create_task" and row["tool_call_id"] == "audit-1"
    assert row["arguments"] == args
    assert row["result_summary"] == "TASK-0001 pending"
    assert row["success"] is True and row["error"] == ""
    assert isinstance(row["latency_ms"], float) and 0 <= row["latency_ms"] < 5000
    assert isinstance(row["cost_usd"], float) and row["cost_usd"] >= 0

    # A failing call is audited too, as a failure with its error.
    failed = await engine.run_turn(
        context=WRITER, message="complete TASK-0042", thread_id=result.thread_id
    )
    rows = await engine.runner.services.tasks.audit_rows(kind="tool")
    assert len(rows) == 2
    newest = rows[0]
    assert newest["tool_call_id"] == "audit-2" and newest["run_id"] == failed.run_id
    assert newest["success"] is False and newest["error"] == "Task TASK-0042 not found."
    assert newest["result_summary"].startswith("error: Task TASK-0042 not found")
    # Exactly one row per call, also in the database itself.
    assert db_rows(tmp_path, "SELECT tool_call_id, COUNT(*) FROM audit GROUP BY 1 ORDER BY 1") == [
        ("audit-1", 1),
        ("audit-2", 1),
    ]
