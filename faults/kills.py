"""SIGKILL the real server at random moments of random turns, restart it, rejoin, and count.

Each round sends one turn — create, update, complete, delete (which asks for approval) or the
approval itself — on one of a few threads, through the stock `langgraph-sdk` (`runs.stream`)
or `/chat/stream`, always with an `Idempotency-Key`. Then the server is killed: after a
random delay, or at an instrumented point (`faults.killpoint`). It is restarted on the same
port and data dir, and the client does what a real one would: it rejoins the run it was
told about (`join_stream` / `Last-Event-ID`), or, if the kill came before it learnt a run id,
sends the same request again with the same key. At the end every thread gets a follow-up.

Counted: acknowledged turns that never complete, task side effects applied twice, task
changes missing, threads that cannot continue, integrity-check failures after every kill
and every restart, and gaps or repeats in the event ids a client saw across the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg
from langgraph_sdk import get_client
from langgraph_sdk.schema import StreamMode

from faults.client import chat_body, read_events
from faults.killpoint import POINTS
from faults.server import ServerProcess, integrity_failures, pg_integrity_failures

TurnKind = Literal["create", "update", "complete", "delete", "approve"]
ClientKind = Literal["sdk", "chat"]

# Paced like a hosted model, so a random kill lands inside a turn most of the time.
TOKEN_DELAY_MS = "15"
MAX_KILL_DELAY_S = 1.2
SETTLE_TIMEOUT_S = 60.0
POINT_WAIT_S = 6.0
STREAM_MODES: list[StreamMode] = ["updates", "messages-tuple"]
WORDS = ("kiwi", "plum", "fig", "lime", "pear", "date", "yuzu", "sloe", "quince", "guava")


@dataclass
class ThreadState:
    """What the driver knows about one thread."""

    client: ClientKind
    thread_id: str | None = None
    alive: list[str] = field(default_factory=list)  # task ids created on it, not deleted
    pending_delete: str | None = None


@dataclass
class Turn:
    """One requested turn and what its client saw."""

    index: int
    kind: TurnKind
    thread: ThreadState
    key: str
    message: str | None = None
    resume: dict[str, Any] | None = None
    title: str | None = None
    task_id: str | None = None
    priority: str | None = None
    run_id: str | None = None
    seen: list[int] = field(default_factory=list)
    finished_live: bool = False
    retried: bool = False
    status: str = "unknown"


@dataclass
class Expected:
    """The task table the requested turns should leave behind."""

    titles: list[str] = field(default_factory=list)
    priority: dict[str, str] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)


@dataclass
class KillReport:
    """The counts of the kill fault."""

    kills: int = 0
    random_kills: int = 0
    point_kills: dict[str, int] = field(default_factory=dict)
    points_not_reached: int = 0
    mid_turn: int = 0
    turns: int = 0
    acknowledged: int = 0
    retried_unacknowledged: int = 0
    lost_acknowledged: int = 0
    lost_unacknowledged: int = 0
    duplicated_effects: int = 0
    missing_effects: int = 0
    threads: int = 0
    threads_not_resumable: int = 0
    integrity_checks: int = 0
    integrity_failures: int = 0
    event_id_gaps: int = 0
    restart_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def zero(self) -> bool:
        """Whether every count that must be zero is."""
        return not (
            self.lost_acknowledged
            or self.lost_unacknowledged
            or self.duplicated_effects
            or self.missing_effects
            or self.threads_not_resumable
            or self.integrity_failures
            or self.event_id_gaps
        )


def points_reached_by(kind: TurnKind) -> list[str]:
    """The kill points a turn of this kind passes through."""
    points = [p for p in POINTS if p != "after_resume_write"]
    if kind == "delete":
        # Asking for approval stops before the tool runs.
        return [p for p in points if p not in ("before_tool_commit", "after_tool_commit")]
    if kind == "approve":
        return [*points, "after_resume_write"]
    return points


class KillDriver:
    """Runs the rounds against one server and keeps the expected state."""

    def __init__(self, workdir: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.data_dir = workdir / "data"
        self.arm = workdir / "killpoint.arm"
        self.server = ServerProcess(
            self.data_dir,
            env={
                "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": TOKEN_DELAY_MS,
                "FAULTS_KILL_ARM": str(self.arm),
            },
            log_path=workdir / "server.log",
            killpoints=True,
        )
        self.threads = [ThreadState("sdk") for _ in range(3)] + [
            ThreadState("chat") for _ in range(3)
        ]
        self.expected = Expected()
        self.report = KillReport(threads=len(self.threads))
        # Where the service keeps its data: the data dir's SQLite files, or PostgreSQL.
        self.database_url: str | None = None

    # --- planning --------------------------------------------------------------------------

    def plan(self, index: int) -> Turn:
        """Choose the next turn: a thread, and what to ask on it."""
        thread = self.rng.choice(self.threads)
        turn = Turn(index, "create", thread, key=str(uuid.uuid4()))
        if thread.pending_delete is not None:
            turn.kind, turn.resume, turn.task_id = (
                "approve",
                {"approved": True},
                (thread.pending_delete),
            )
            return turn
        kinds: list[TurnKind] = ["create"]
        if thread.alive:
            kinds += ["create", "update", "complete", "delete"]
        turn.kind = self.rng.choice(kinds)
        if turn.kind == "create":
            turn.title = f"Fault {index:03d} {self.rng.choice(WORDS)}"
            turn.message = f"Create a task called {turn.title}, high priority"
            return turn
        turn.task_id = self.rng.choice(thread.alive)
        if turn.kind == "update":
            turn.priority = self.rng.choice(["urgent", "low"])
            turn.message = f"set {turn.task_id} to {turn.priority}"
        elif turn.kind == "complete":
            turn.message = f"mark {turn.task_id} done"
        else:
            turn.message = f"delete {turn.task_id}"
        return turn

    # --- one turn, as its client sees it ---------------------------------------------------

    async def send(self, turn: Turn) -> None:
        """Send the turn and read its stream to the end (or until cancelled by a kill)."""
        if turn.thread.client == "sdk":
            await self._send_sdk(turn)
        else:
            await self._send_chat(turn)
        turn.finished_live = True

    async def _send_sdk(self, turn: Turn) -> None:
        client = get_client(url=self.server.url, timeout=SETTLE_TIMEOUT_S)
        thread = turn.thread
        assert thread.thread_id is not None
        kwargs: dict[str, Any] = (
            {"command": {"resume": turn.resume}}
            if turn.resume is not None
            else {"input": {"messages": [{"role": "user", "content": turn.message}]}}
        )
        async for part in client.runs.stream(
            thread.thread_id,
            "agent",
            stream_mode=STREAM_MODES,
            headers={"Idempotency-Key": turn.key},
            **kwargs,
        ):
            if part.id is not None:
                turn.seen.append(int(part.id))
            if part.event == "metadata" and isinstance(part.data, dict):
                turn.run_id = turn.run_id or part.data.get("run_id")
            if part.event == "error":
                turn.status = f"error event: {part.data}"

    async def _send_chat(self, turn: Turn) -> None:
        body = chat_body(turn.message, turn.thread.thread_id, turn.resume)
        async with (
            httpx.AsyncClient(base_url=self.server.url, timeout=SETTLE_TIMEOUT_S) as http,
            http.stream(
                "POST", "/chat/stream", json=body, headers={"Idempotency-Key": turn.key}
            ) as response,
        ):
            if response.status_code != 200:
                turn.status = f"HTTP {response.status_code}: {await response.aread()!r}"
                return
            location = response.headers.get("content-location", "")
            turn.run_id = turn.run_id or location.rsplit("/", 2)[-2] or None
            await self._read_chat(turn, response)

    async def _read_chat(self, turn: Turn, response: httpx.Response) -> None:
        async for event in read_events(response):
            if event.id is not None:
                turn.seen.append(event.id)
            if event.event == "metadata" and isinstance(event.data, dict):
                turn.thread.thread_id = turn.thread.thread_id or event.data.get("thread_id")
            if event.event == "error":
                turn.status = f"error event: {event.data}"

    async def rejoin(self, turn: Turn) -> None:
        """After the restart: follow the run from the last event id this client saw."""
        assert turn.run_id is not None
        last = max(turn.seen) if turn.seen else None
        if turn.thread.client == "sdk":
            assert turn.thread.thread_id is not None
            client = get_client(url=self.server.url, timeout=SETTLE_TIMEOUT_S)
            async for part in client.runs.join_stream(
                turn.thread.thread_id,
                turn.run_id,
                last_event_id=None if last is None else str(last),
            ):
                if part.id is not None:
                    turn.seen.append(int(part.id))
            return
        headers = {} if last is None else {"Last-Event-ID": str(last)}
        async with (
            httpx.AsyncClient(base_url=self.server.url, timeout=SETTLE_TIMEOUT_S) as http,
            http.stream("GET", f"/chat/runs/{turn.run_id}/stream", headers=headers) as response,
        ):
            response.raise_for_status()
            await self._read_chat(turn, response)

    async def run_status(self, turn: Turn) -> str:
        """The run's status as the server reports it."""
        assert turn.run_id is not None and turn.thread.thread_id is not None
        client = get_client(url=self.server.url, timeout=SETTLE_TIMEOUT_S)
        run = await client.runs.get(turn.thread.thread_id, turn.run_id)
        return str(run["status"])

    # --- a round ---------------------------------------------------------------------------

    async def round(self, index: int) -> None:
        """One turn, one kill, one restart, one settle."""
        turn = self.plan(index)
        if turn.thread.client == "sdk" and turn.thread.thread_id is None:
            client = get_client(url=self.server.url, timeout=SETTLE_TIMEOUT_S)
            turn.thread.thread_id = (await client.threads.create())["thread_id"]
        point: str | None = None
        if self.rng.random() < 0.4:
            point = self.rng.choice(points_reached_by(turn.kind))
            reach = 1
            if point in ("after_checkpoint", "after_event_log"):
                reach = self.rng.randint(1, 4)
            elif point == "after_resume_write":
                reach = self.rng.randint(1, 2)
            self.arm.write_text(f"{point} {reach}")
        sender = asyncio.create_task(self.send(turn))
        if point is None:
            await asyncio.sleep(self.rng.uniform(0.0, MAX_KILL_DELAY_S))
            mid_turn = not sender.done()
            self.server.kill()
            self.report.random_kills += 1
        else:
            died = await asyncio.to_thread(self.server.wait_dead, POINT_WAIT_S)
            mid_turn = died
            if not died:
                self.report.points_not_reached += 1
                self.server.kill()
            self.report.point_kills[point] = self.report.point_kills.get(point, 0) + 1
        self.arm.unlink(missing_ok=True)
        self.report.kills += 1
        self.report.mid_turn += int(mid_turn)
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        self.check_integrity(f"after kill {index}")
        await asyncio.to_thread(self.server.start)
        self.report.restart_s.append(self.server.start_seconds[-1])
        await self.settle(turn)
        self.check_integrity(f"after restart {index}")

    async def settle(self, turn: Turn) -> None:
        """Finish the turn as a client would, then record what it should have done."""
        self.report.turns += 1
        acknowledged = turn.run_id is not None
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                if acknowledged:
                    self.report.acknowledged += 1
                    await self.rejoin(turn)
                else:
                    # Never told a run id: send the same request again under the same key.
                    self.report.retried_unacknowledged += 1
                    turn.retried, turn.seen = True, []
                    await self.send(turn)
                turn.status = await self.run_status(turn)
        except Exception as exc:
            turn.status = f"{type(exc).__name__}: {exc}"
        if turn.status != "success":
            if acknowledged:
                self.report.lost_acknowledged += 1
            else:
                self.report.lost_unacknowledged += 1
            self.report.problems.append(
                f"turn {turn.index} ({turn.kind}, {turn.thread.client}) ended {turn.status}"
            )
            return
        if turn.seen != list(range(1, len(turn.seen) + 1)):
            self.report.event_id_gaps += 1
            self.report.problems.append(f"turn {turn.index}: event ids {turn.seen}")
        self.record(turn)

    def record(self, turn: Turn) -> None:
        """Update the expected state with what a completed turn must have done."""
        thread, expected = turn.thread, self.expected
        if turn.kind == "create":
            assert turn.title is not None
            expected.titles.append(turn.title)
            task_id = self.task_id_of(turn.title)
            if task_id is not None:
                thread.alive.append(task_id)
                expected.priority[task_id] = "high"
        elif turn.kind == "update":
            assert turn.task_id is not None and turn.priority is not None
            expected.priority[turn.task_id] = turn.priority
        elif turn.kind == "complete":
            assert turn.task_id is not None
            expected.completed.add(turn.task_id)
        elif turn.kind == "delete":
            thread.pending_delete = turn.task_id
        else:
            assert turn.task_id is not None
            thread.pending_delete = None
            thread.alive.remove(turn.task_id)
            expected.deleted.add(turn.task_id)

    # --- checks ----------------------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the task database as an operator would."""
        if self.database_url:
            with psycopg.connect(self.database_url, autocommit=True) as pg:
                return pg.execute(sql.replace("?", "%s"), params).fetchall()
        conn = sqlite3.connect(f"file:{self.data_dir / 'tasks.sqlite'}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def task_id_of(self, title: str) -> str | None:
        """The id of the (one) task with this title."""
        rows = self.query("SELECT id FROM tasks WHERE title = ?", title)
        return str(rows[0][0]) if rows else None

    def check_integrity(self, when: str) -> None:
        """`PRAGMA integrity_check` on every database in the data dir."""
        self.report.integrity_checks += 1
        failures = (
            pg_integrity_failures(self.database_url)
            if self.database_url
            else integrity_failures(self.data_dir)
        )
        if failures:
            self.report.integrity_failures += 1
            self.report.problems.append(f"integrity {when}: {failures}")

    async def follow_up_everywhere(self) -> None:
        """A new turn on every thread (answering a pending approval first) must succeed."""
        async with httpx.AsyncClient(base_url=self.server.url, timeout=SETTLE_TIMEOUT_S) as http:
            for thread in self.threads:
                if thread.thread_id is None:
                    continue
                try:
                    if thread.pending_delete is not None:
                        reply = await http.post(
                            "/chat", json=chat_body(None, thread.thread_id, {"approved": True})
                        )
                        reply.raise_for_status()
                        self.expected.deleted.add(thread.pending_delete)
                        thread.alive.remove(thread.pending_delete)
                        thread.pending_delete = None
                    reply = await http.post(
                        "/chat", json=chat_body("list my tasks", thread.thread_id)
                    )
                    reply.raise_for_status()
                    if not reply.json().get("message"):
                        raise ValueError("empty answer")
                except Exception as exc:
                    self.report.threads_not_resumable += 1
                    self.report.problems.append(f"thread {thread.thread_id}: {exc}")

    def check_effects(self) -> None:
        """Each requested change happened exactly once; nothing else happened."""
        created = self.query("SELECT arguments FROM tool_results WHERE tool = 'create_task'")
        per_title: dict[str, int] = {}
        for (arguments,) in created:
            title = json.loads(arguments).get("title", "")
            per_title[title] = per_title.get(title, 0) + 1
        for title in self.expected.titles:
            count = per_title.get(title, 0)
            if count > 1:
                self.report.duplicated_effects += count - 1
                self.report.problems.append(f"{title!r} created {count} times")
            elif count == 0:
                self.report.missing_effects += 1
                self.report.problems.append(f"{title!r} never created")
        unrequested = set(per_title) - set(self.expected.titles)
        for title in unrequested:
            self.report.duplicated_effects += per_title[title]
            self.report.problems.append(f"{title!r} created but never acknowledged as requested")
        executions = self.query(
            "SELECT tool_call_id, COUNT(*) FROM audit WHERE kind = 'tool' AND tool_call_id != ''"
            " GROUP BY tool_call_id HAVING COUNT(*) > 1"
        )
        self.report.duplicated_effects += len(executions)
        rows = {
            str(task_id): (str(priority), str(status))
            for task_id, priority, status in self.query("SELECT id, priority, status FROM tasks")
        }
        for task_id, priority in self.expected.priority.items():
            if task_id in self.expected.deleted:
                if task_id in rows:
                    self.report.missing_effects += 1
                    self.report.problems.append(f"{task_id} still exists after approved delete")
                continue
            if task_id not in rows:
                self.report.missing_effects += 1
                self.report.problems.append(f"{task_id} missing")
                continue
            want_status = "completed" if task_id in self.expected.completed else None
            got_priority, got_status = rows[task_id]
            if got_priority != priority or (want_status and got_status != want_status):
                self.report.missing_effects += 1
                self.report.problems.append(
                    f"{task_id}: {got_priority}/{got_status}, expected {priority}/{want_status}"
                )


async def run_kills(count: int, workdir: Path, seed: int = 6) -> KillReport:
    """Kill the server `count` times as described in the module docstring; return the counts."""
    started = time.monotonic()
    driver = KillDriver(workdir, seed)
    await asyncio.to_thread(driver.server.start)
    try:
        for index in range(1, count + 1):
            await driver.round(index)
        await driver.follow_up_everywhere()
        driver.check_effects()
        driver.check_integrity("at the end")
    finally:
        await asyncio.to_thread(driver.server.close)
    driver.report.seconds = time.monotonic() - started
    return driver.report
