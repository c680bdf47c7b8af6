"""A hypothesis state machine drives the real app as three users and checks the database.

The app (`create_app`) runs in-process with its lifespan entered directly and is called
through `httpx.ASGITransport`, so every request goes through the real routes, API keys,
runs, graph (offline engine as the model), task store and SQLite files in a temp dir.
The users hold keys with the roles read (`rita`), write (`walt`) and admin (`ada`).

Rules: create a task through chat, update it ("set TASK-000N to urgent"), complete it,
delete it and answer the approval, list, chat with a benign (or random) message, look at
and act on task ids that belong to someone else, start a new thread.

Invariants, after every step, read from the database (tasks.sqlite), not from answers:

- nobody but a task's owner or an admin ever changes or removes it, and no answer to a
  non-admin ever contains the title of a task someone else owns; each "list my tasks"
  result is a subset of the tasks whose owner is the caller;
- the read-only user never changes the database: tasks and stored tool results are
  identical before and after each of its requests (so row count and max(updated_at) are);
- audit rows of kind 'tool' are exactly the executed tool calls: one row per call id, for
  every tool result in the threads' histories that the guard did not refuse, halt or have
  rejected; and the mutating ones are exactly the stored tool results;
- budgets: no model call starts once its thread or its user's day is at the limit (each
  usage row is preceded by less than the limit), so totals exceed a limit by at most the
  one call that crossed it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from langchain_core.messages import AIMessage, ToolMessage

from server.app import create_app
from server.runs.runner import AgentRunner
from tests.conftest import make_settings
from tools.schemas import MUTATING_TOOLS

KEYS = {"rita": "k-rita-st-1d2e", "walt": "k-walt-st-83f0", "ada": "k-ada-st-c4a9"}
ROLES = {"rita": "read", "walt": "write", "ada": "admin"}
USERS = tuple(KEYS)

# Small enough that the state machine runs into them (the offline engine uses about 150
# estimated tokens per model call, two calls per tool-using turn).
BUDGET_TOKENS_PER_THREAD = 2_000
BUDGET_TOKENS_PER_USER_DAY = 8_000

THINGS = (
    "water the plants",
    "renew the passport",
    "call the plumber",
    "book the dentist",
    "pay the rent",
    "plan the offsite",
)
BENIGN = (
    "hello",
    "what's overdue?",
    "show my high priority tasks",
    "pending tasks due this week",
    "summarize my tasks",
    "help",
    "thanks!",
    "what can you do?",
)
TASK_NUMBERS = st.integers(min_value=1, max_value=12)  # ids that may or may not exist

EXAMPLES = 30
STEPS_PER_EXAMPLE = 20
STEPS = Counter[str]()  # rule name -> how often it ran, over every example


def task_id(number: int) -> str:
    return f"TASK-{number:04d}"


class Database:
    """Read-only views of tasks.sqlite, through a connection of our own."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "tasks.sqlite"

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            return db.execute(sql, params).fetchall()

    def tasks(self) -> dict[str, tuple[Any, ...]]:
        rows = self.rows(
            "SELECT id, owner, title, priority, status, due_date, updated_at, completed_at"
            " FROM tasks"
        )
        return {row[0]: row for row in rows}

    def owner(self, task: str) -> str | None:
        found = self.rows("SELECT owner FROM tasks WHERE id = ?", (task,))
        return found[0][0] if found else None

    def readonly_view(self) -> tuple[Any, ...]:
        """What the read-only user must never change."""
        count, newest = self.rows("SELECT COUNT(*), MAX(updated_at) FROM tasks")[0]
        return (
            count,
            newest,
            self.rows("SELECT * FROM tasks ORDER BY seq"),
            self.rows("SELECT call_id, result FROM tool_results ORDER BY call_id"),
        )


class TaskAgentMachine(RuleBasedStateMachine):
    """Three users and one real app; see the module docstring for rules and invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.data_dir = Path(tempfile.mkdtemp(prefix="taskagent-stateful-"))
        self.loop = asyncio.new_event_loop()
        keys = ",".join(f"{KEYS[u]}:{u}:{ROLES[u]}" for u in USERS)
        self.settings = make_settings(
            self.data_dir,
            api_keys=keys,
            budget_tokens_per_thread=BUDGET_TOKENS_PER_THREAD,
            budget_tokens_per_user_day=BUDGET_TOKENS_PER_USER_DAY,
        )
        self.app = create_app(self.settings)
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.run(self.lifespan.__aenter__())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://localhost", timeout=60
        )
        self.db = Database(self.data_dir)
        self.thread: dict[str, str | None] = dict.fromkeys(USERS)
        # thread id -> (its user, the approval it waits for)
        self.pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self.created: dict[str, tuple[str, str]] = {}  # task id -> (creator, title)
        self.counter = 0

    # -- plumbing ---------------------------------------------------------------------

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    @property
    def runner(self) -> AgentRunner:
        runner: AgentRunner = self.app.state.runner
        return runner

    def teardown(self) -> None:
        try:
            usage = self.db.rows("SELECT thread_id, SUM(tokens) FROM usage GROUP BY thread_id")
            STEPS["max thread tokens"] = max(
                [STEPS["max thread tokens"], *(int(row[1]) for row in usage)]
            )
            refusals = "SELECT COUNT(*) FROM audit WHERE kind = 'budget' AND success = 0"
            STEPS["budget refusals"] += self.db.rows(refusals)[0][0]
            self.run(self.client.aclose())
            self.run(self.lifespan.__aexit__(None, None, None))
        finally:
            self.loop.close()
            shutil.rmtree(self.data_dir, ignore_errors=True)
        STEPS["examples"] += 1

    def post(self, user: str, body: dict[str, Any]) -> httpx.Response:
        """POST /chat as `user`, checking who may change what across the request."""
        before = self.db.tasks()
        readonly = self.db.readonly_view() if ROLES[user] == "read" else None
        response: httpx.Response = self.run(
            self.client.post("/chat", json=body, headers={"X-Api-Key": KEYS[user]})
        )
        after = self.db.tasks()
        if readonly is not None:
            assert self.db.readonly_view() == readonly, f"read-only {user} changed the database"
        if ROLES[user] != "admin":
            for task in set(before) | set(after):
                if before.get(task) != after.get(task):
                    owner = (before.get(task) or after.get(task) or ("", ""))[1]
                    assert owner == user, f"{user} changed {task} of {owner}: {response.text}"
        self.no_foreign_titles(user, response.text)
        return response

    def say(self, user: str, message: str) -> dict[str, Any] | None:
        """Send a message on the user's current thread (a new one if none)."""
        thread = self.thread[user]
        body: dict[str, Any] = {"message": message}
        if thread is not None:
            body["thread_id"] = thread
        response = self.post(user, body)
        if thread is not None and thread in self.pending:
            # A new message while an approval is pending is refused, naming the question.
            assert response.status_code == 409, response.text
            assert "is waiting for your answer" in response.json()["detail"]
            self.thread[user] = None  # carry on in a new thread; the question stays open
            return None
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        self.thread[user] = data["thread_id"]
        if data["interrupt"] is not None:
            STEPS["approvals asked"] += 1
            self.pending[data["thread_id"]] = (user, data["interrupt"])
        return data

    def no_foreign_titles(self, user: str, text: str) -> None:
        if ROLES[user] == "admin":
            return  # admins may reach everyone's tasks
        lowered = text.lower()
        for task, (creator, title) in self.created.items():
            if creator != user:
                assert title.lower() not in lowered, f"{user} was shown {task} of {creator}"

    def pick_task(self, data: st.DataObject, number: int) -> str:
        """Mostly an existing task (anyone's), sometimes an id that may not exist."""
        existing = sorted(self.db.tasks())
        reuse: int = data.draw(st.integers(0, 3), label="existing?")
        # Drawn the same way whatever the database holds: hypothesis replays a case only if
        # its draws do not depend on state outside it (FlakyStrategyDefinition otherwise).
        index: int = data.draw(st.integers(0, 63), label="task")
        if existing and reuse:
            return str(existing[index % len(existing)])
        return task_id(number)

    @staticmethod
    def results(data: dict[str, Any] | None, tool: str) -> list[dict[str, Any]]:
        if data is None:
            return []
        return [c["result"] for c in data["tool_calls"] if c["tool"] == tool and c["result"]]

    # -- rules ------------------------------------------------------------------------

    @initialize(things=st.lists(st.sampled_from(THINGS), min_size=2, max_size=2))
    def everyone_writing_has_a_task(self, things: list[str]) -> None:
        """Start with a task of walt's and one of ada's, so there is something to reach for."""
        for user, thing in zip(("walt", "ada"), things, strict=True):
            self.create_task(user, thing)
        assert {owner for owner, _ in self.created.values()} == {"walt", "ada"}
        self.thread = dict.fromkeys(USERS)

    @rule(user=st.sampled_from(USERS), thing=st.sampled_from(THINGS))
    def create_task(self, user: str, thing: str) -> None:
        STEPS["create"] += 1
        self.counter += 1
        token = f"zq{self.counter}k"  # makes every title unique and easy to look for
        data = self.say(user, f"add a task to {thing} {token}")
        for result in self.results(data, "create_task"):
            assert ROLES[user] != "read", f"read-only {user} created a task: {result}"
            if result.get("ok"):
                task = result["task"]
                assert token in task["title"].lower()
                assert self.db.owner(task["id"]) == user
                self.created[task["id"]] = (user, task["title"])

    @rule(
        data=st.data(),
        user=st.sampled_from(USERS),
        number=TASK_NUMBERS,
        priority=st.sampled_from(("urgent", "low", "high priority")),
    )
    def update_task(self, data: st.DataObject, user: str, number: int, priority: str) -> None:
        STEPS["update"] += 1
        task = self.pick_task(data, number)
        owner = self.db.owner(task)
        answer = self.say(user, f"set {task} to {priority}")
        for result in self.results(answer, "update_task"):
            if result.get("ok"):
                assert owner == user or ROLES[user] == "admin", result

    @rule(data=st.data(), user=st.sampled_from(USERS), number=TASK_NUMBERS)
    def complete_task(self, data: st.DataObject, user: str, number: int) -> None:
        STEPS["complete"] += 1
        task = self.pick_task(data, number)
        owner = self.db.owner(task)
        answer = self.say(user, f"mark {task} done")
        for result in self.results(answer, "complete_task"):
            if result.get("ok"):
                assert owner == user or ROLES[user] == "admin", result

    @rule(data=st.data(), user=st.sampled_from(USERS), number=TASK_NUMBERS)
    def delete_task(self, data: st.DataObject, user: str, number: int) -> None:
        STEPS["delete"] += 1
        task = self.pick_task(data, number)
        owner = self.db.owner(task)
        title = self.db.tasks().get(task, (task, owner, ""))[2]
        answer = self.say(user, f"delete {task}")
        if answer is not None and answer["interrupt"] is not None:
            # Asked only about a task the user may delete, and about the right one.
            interrupt = answer["interrupt"]
            assert ROLES[user] != "read"
            assert interrupt["task_id"] == task and owner is not None
            assert owner == user or ROLES[user] == "admin"
            assert interrupt["title"] == title
        assert self.db.owner(task) == owner  # nothing is deleted before the approval

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), approved=st.booleans())
    def answer_approval(self, data: st.DataObject, approved: bool) -> None:
        STEPS["approve" if approved else "reject"] += 1
        thread = data.draw(st.sampled_from(sorted(self.pending)), label="thread")
        user, interrupt = self.pending[thread]
        before = self.db.tasks().get(interrupt["task_id"])
        response = self.post(user, {"thread_id": thread, "resume": {"approved": approved}})
        assert response.status_code == 200, response.text
        del self.pending[thread]
        answer = response.json()
        if answer["interrupt"] is not None:
            self.pending[thread] = (user, answer["interrupt"])
        after = self.db.tasks().get(interrupt["task_id"])
        if interrupt["tool"] != "delete_task":
            # An admin's change to another user's task, asked about like a deletion.
            if not approved:
                assert after == before, f"rejected {interrupt['tool']} happened: {after}"
            return
        if approved:
            assert after is None, f"approved deletion of {interrupt['task_id']} did not happen"
        elif before is not None:
            assert after is not None, f"rejected deletion of {interrupt['task_id']} happened"

    @rule(user=st.sampled_from(USERS))
    def list_tasks(self, user: str) -> None:
        STEPS["list"] += 1
        data = self.say(user, "list my tasks")
        for result in self.results(data, "list_tasks"):
            assert result.get("ok"), result
            owned = {
                row[0]: row[2]
                for row in self.db.rows(
                    "SELECT id, owner, title FROM tasks WHERE owner = ?", (user,)
                )
            }
            listed = {task["id"]: task["title"] for task in result["tasks"]}
            assert listed.items() <= owned.items(), f"{user} listed {listed}, owns {owned}"

    @rule(
        user=st.sampled_from(USERS),
        message=st.one_of(st.sampled_from(BENIGN), st.text(min_size=1, max_size=40)),
    )
    def chat(self, user: str, message: str) -> None:
        STEPS["chat"] += 1
        thread = self.thread[user]
        body: dict[str, Any] = {"message": message}
        if thread is not None:
            body["thread_id"] = thread
        response = self.post(user, body)
        # Random text may be empty after stripping (422) or meet a pending approval (409).
        assert response.status_code in (200, 409, 422), response.text
        if response.status_code == 200:
            data = response.json()
            self.thread[user] = data["thread_id"]
            # Random text that is a plain yes or no answers the pending approval.
            self.pending.pop(data["thread_id"], None)
            if data["interrupt"] is not None:
                STEPS["approvals asked"] += 1
                self.pending[data["thread_id"]] = (user, data["interrupt"])
        elif response.status_code == 409:
            self.thread[user] = None

    @precondition(lambda self: len({row[1] for row in self.db.tasks().values()}) >= 1)
    @rule(
        data=st.data(),
        user=st.sampled_from(USERS),
        verb=st.sampled_from(
            ("show", "complete", "delete", "rename {} to stolen", "set {} to low")
        ),
    )
    def touch_someone_elses_task(self, data: st.DataObject, user: str, verb: str) -> None:
        foreign = sorted(t for t, row in self.db.tasks().items() if row[1] != user)
        if not foreign:
            return
        task = data.draw(st.sampled_from(foreign), label="task")
        owner = self.db.owner(task)
        STEPS["foreign"] += 1
        message = verb.format(task) if "{}" in verb else f"{verb} {task}"
        answer = self.say(user, message)
        if answer is None or ROLES[user] == "admin":
            return
        assert answer["interrupt"] is None, f"{user} was asked to approve deleting {owner}'s task"
        for call in answer["tool_calls"]:
            assert not (call["result"] or {}).get("ok") or call["tool"] in (
                "list_tasks",
                "task_summary",
            ), f"{user} acted on {owner}'s {task}: {call}"

    @rule(user=st.sampled_from(USERS))
    def new_thread(self, user: str) -> None:
        STEPS["new thread"] += 1
        self.thread[user] = None

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def tasks_keep_their_owner(self) -> None:
        for task, row in self.db.tasks().items():
            assert row[1] in USERS, row
            if task in self.created:
                assert row[1] == self.created[task][0], f"{task} changed owner: {row}"

    @invariant()
    def audit_matches_executed_tool_calls(self) -> None:
        results, halted = self.tool_results_in_histories()
        tool_rows = self.db.rows("SELECT tool_call_id, tool FROM audit WHERE kind = 'tool'")
        tool_ids = Counter(row[0] for row in tool_rows)
        assert all(n == 1 for n in tool_ids.values()), f"audited twice: {tool_ids}"
        denied = {
            r[0] for r in self.db.rows("SELECT tool_call_id FROM audit WHERE kind = 'denied'")
        }
        rejected = {
            r[0]
            for r in self.db.rows(
                "SELECT tool_call_id FROM audit WHERE kind = 'approval' AND success = 0"
            )
        }
        executed = set(results) - denied - rejected - halted
        assert set(tool_ids) == executed, (
            f"audited but not executed: {set(tool_ids) - executed}; "
            f"executed but not audited: {executed - set(tool_ids)}"
        )
        assert not set(tool_ids) & denied, "a call both executed and denied"
        mutations = {row[0] for row in tool_rows if row[1] in MUTATING_TOOLS}
        stored = {row[0] for row in self.db.rows("SELECT call_id FROM tool_results")}
        assert mutations == stored, f"mutations audited {mutations}, stored {stored}"

    def tool_results_in_histories(self) -> tuple[dict[str, str], set[str]]:
        """Every tool result in every thread (archive + window), and those halted by a limit."""
        results: dict[str, str] = {}
        halted: set[str] = set()
        for (thread,) in self.db.rows("SELECT thread_id FROM threads"):
            messages = self.run(self.runner.history(thread))
            stopped = any(
                isinstance(m, AIMessage) and m.response_metadata.get("halted") for m in messages
            )
            for message in messages:
                if isinstance(message, ToolMessage):
                    results[message.tool_call_id] = message.name or ""
                    if stopped and "Not executed" in str(message.content):
                        halted.add(message.tool_call_id)
        return results, halted

    @invariant()
    def no_model_call_after_a_budget_is_used_up(self) -> None:
        thread_spent: Counter[str] = Counter()
        user_spent: Counter[tuple[str, str]] = Counter()
        for thread, user, day, tokens in self.db.rows(
            "SELECT thread_id, user, day, tokens FROM usage ORDER BY id"
        ):
            assert thread_spent[thread] < BUDGET_TOKENS_PER_THREAD, (
                f"model called on thread {thread} with {thread_spent[thread]} tokens spent"
            )
            assert user_spent[(user, day)] < BUDGET_TOKENS_PER_USER_DAY, (
                f"model called for {user} with {user_spent[(user, day)]} tokens spent today"
            )
            thread_spent[thread] += tokens
            user_spent[(user, day)] += tokens


def test_three_users_never_cross_and_the_database_stays_consistent() -> None:
    STEPS.clear()
    started = time.perf_counter()
    run_state_machine_as_test(
        TaskAgentMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS_PER_EXAMPLE,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    seconds = time.perf_counter() - started
    extra = ("examples", "max thread tokens", "budget refusals", "approvals asked")
    rules = {k: v for k, v in STEPS.items() if k not in extra}
    print(
        f"\nstateful: {STEPS['examples']} examples, {sum(rules.values())} rule steps in "
        f"{seconds:.1f}s; per rule {json.dumps(rules)}; approvals asked "
        f"{STEPS['approvals asked']}; budget refusals "
        f"{STEPS['budget refusals']}; largest thread spend {STEPS['max thread tokens']} tokens"
    )
    assert STEPS["examples"] >= EXAMPLES
    assert STEPS["create"] and STEPS["list"] and STEPS["foreign"] and STEPS["approvals asked"]
    assert seconds < 90
