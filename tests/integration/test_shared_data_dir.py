"""Several processes on one data dir: kill -9 one mid-run and another finishes it, exactly once.

Every process here is real (`taskagent serve`, `taskagent chat`, `taskagent mcp`), on loopback,
with the offline engine paced like a hosted model so a kill lands inside a turn. Runs are
leased in `runs.sqlite` for `TASKAGENT_RUN_LEASE_S` (2 s here); when the owner dies, another
process takes the run over from its last checkpoint. The verdict comes from the data dir: the
task exists once, its tool ran (and was audited) once, the run ended `success`, and the event
ids a client saw across the kill are 1..n without a gap or a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.schema import StreamPart

from faults.shared import LeaseWatch, pid_of
from tests.integration.conftest import REPO, LiveServer, offline_env
from tests.integration.test_mcp import mcp_stdio

pytestmark = pytest.mark.integration

T = TypeVar("T")

# A 2 s lease so a dead process's run is taken over quickly; the first token of each model
# reply waits 0.7 s (so a kill "after the first event" comes before the tool runs) and the
# answer streams a word every 40 ms (so a kill after the tool result comes mid-answer).
SHARED = {
    "TASKAGENT_RUN_LEASE_S": "2",
    "TASKAGENT_RUN_POLL_S": "0.2",
    "TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": "700",
    "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "40",
}
CREATE = "Create a high-priority task for the quarterly review due next Friday"
CREATED = [("TASK-0001", "Quarterly review")]
# Lease expiry + polling + the rest of the turn take a few seconds; this bounds a hang.
TAKEOVER_S = 45.0
MODES: Any = ["updates", "messages-tuple"]


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read a database of the data dir as an operator would; [] while it does not exist yet."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def task_rows(data: Path) -> list[tuple[str, str]]:
    return [
        (str(i), str(t)) for i, t in query(data / "tasks.sqlite", "SELECT id, title FROM tasks")
    ]


def runs(data: Path) -> list[tuple[str, str, str]]:
    """(run_id, thread_id, status) of every run, oldest first."""
    return [
        (str(r), str(t), str(s))
        for r, t, s in query(
            data / "runs.sqlite", "SELECT run_id, thread_id, status FROM runs ORDER BY rowid"
        )
    ]


def run_status(data: Path, run_id: str) -> str | None:
    rows = query(data / "runs.sqlite", "SELECT status FROM runs WHERE run_id = ?", run_id)
    return str(rows[0][0]) if rows else None


def event_seqs(data: Path, run_id: str) -> list[int]:
    rows = query(
        data / "runs.sqlite", "SELECT seq FROM run_events WHERE run_id = ? ORDER BY seq", run_id
    )
    return [int(seq) for (seq,) in rows]


def lease_pid(data: Path, run_id: str) -> int | None:
    """The process that holds the run's lease now, if any."""
    rows = query(data / "runs.sqlite", "SELECT lease_owner FROM runs WHERE run_id = ?", run_id)
    return pid_of(rows[0][0]) if rows else None


async def wait_for(
    probe: Callable[[], T | None],
    what: str,
    *,
    timeout: float = TAKEOVER_S,
    gave_up: Callable[[], str | None] = lambda: None,
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` (or why it gave up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = probe()
        if found:
            return found
        if (reason := gave_up()) is not None:
            pytest.fail(f"{what}: {reason}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:g} s")
        await asyncio.sleep(0.05)


def assert_done_exactly_once(data: Path, run_id: str) -> None:
    """The run succeeded, its task exists once, the tool ran once, the event log has no gap."""
    assert run_status(data, run_id) == "success"
    assert task_rows(data) == CREATED
    tool_audit = query(
        data / "tasks.sqlite", "SELECT tool, success FROM audit WHERE kind = 'tool' ORDER BY id"
    )
    assert tool_audit == [("create_task", 1)], "the tool must run (and be audited) once"
    seqs = event_seqs(data, run_id)
    assert seqs == list(range(1, len(seqs) + 1)), f"logged event ids {seqs}"
    for name in ("checkpoints.sqlite", "tasks.sqlite", "runs.sqlite"):
        assert query(data / name, "PRAGMA integrity_check") == [("ok",)]


def answer_of(parts: list[StreamPart]) -> str:
    """The assistant's words streamed in `parts` (messages-tuple chunks)."""
    return "".join(
        str(p.data[0]["content"])
        for p in parts
        if p.event == "messages" and p.data[0]["type"] == "AIMessageChunk"
    )


def exited(proc: subprocess.Popen[bytes]) -> Callable[[], str | None]:
    def reason() -> str | None:
        if proc.poll() is None:
            return None
        output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        return f"the process exited ({proc.returncode}) first: {output[-2000:]}"

    return reason


def worker_pids(server: LiveServer) -> list[int]:
    """The pids of the uvicorn workers under `serve --workers`, once all of them serve."""
    started = sum("Application startup complete" in line for line in server.output)
    workers = [
        child.pid
        for child in psutil.Process(server.proc.pid).children()
        if any("spawn_main" in part for part in child.cmdline())
    ]
    return workers if started >= 2 and len(workers) == 2 else []


async def two_servers(data: Path) -> tuple[LiveServer, LiveServer]:
    """Start two `taskagent serve` processes on different ports and the same data dir."""
    first, second = await asyncio.gather(
        asyncio.to_thread(LiveServer, data, None, SHARED, (), 60),
        asyncio.to_thread(LiveServer, data, None, SHARED, (), 60),
    )
    return first, second


# --- two servers -------------------------------------------------------------------------


@pytest.mark.parametrize("kill_after", ["first event", "tool result"])
async def test_a_run_on_a_killed_server_is_finished_by_the_other_one_exactly_once(
    tmp_path: Path, kill_after: str
) -> None:
    data = tmp_path / "data"
    a, b = await two_servers(data)
    leases = LeaseWatch(data / "runs.sqlite").start()
    try:
        client_a = get_client(url=a.url)
        tid = (await client_a.threads.create())["thread_id"]
        seen: list[StreamPart] = []
        async for part in client_a.runs.stream(
            tid, "agent", input=human(CREATE), stream_mode=MODES
        ):
            seen.append(part)
            tool_done = part.event == "updates" and "tool_execute" in part.data
            if kill_after == "first event" or tool_done:
                a.kill()
                break
        run_id = str(seen[0].data["run_id"])
        # The kill came where it was meant to: before the tool, or after it but mid-run.
        assert task_rows(data) == ([] if kill_after == "first event" else CREATED)
        assert run_status(data, run_id) == "running"

        client_b = get_client(url=b.url)
        last = max(int(p.id) for p in seen if p.id is not None)
        async with asyncio.timeout(TAKEOVER_S):
            rest = [
                p async for p in client_b.runs.join_stream(tid, run_id, last_event_id=str(last))
            ]

        ids = [int(p.id) for p in seen + rest if p.id is not None]
        assert ids == list(range(1, len(ids) + 1)), f"event ids across the kill: {ids}"
        answer = answer_of(rest)
        assert answer.startswith("Created TASK-0001") and "Quarterly review" in answer
        assert_done_exactly_once(data, run_id)
        assert leases.holders(run_id) == [a.proc.pid, b.proc.pid], "A ran it, then B"
        state = await client_b.threads.get_state(tid)
        values = state["values"]
        assert isinstance(values, dict) and values["messages"][-1]["content"] == answer
    finally:
        await leases.stop()
        a.stop()
        b.stop()


async def test_a_server_stalled_past_its_lease_loses_the_run_and_writes_nothing_after(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    a, b = await two_servers(data)
    leases = LeaseWatch(data / "runs.sqlite").start()
    try:
        client_a = get_client(url=a.url)
        tid = (await client_a.threads.create())["thread_id"]
        run = await client_a.runs.create(tid, "agent", input=human(CREATE), stream_mode=MODES)
        run_id = str(run["run_id"])
        await wait_for(lambda: task_rows(data), "the task the turn creates")
        os.kill(a.proc.pid, signal.SIGSTOP)  # a pause past the lease: GC, swap, a frozen VM
        try:
            await wait_for(lambda: run_status(data, run_id) == "success", "B finishing the run")
            client_b = get_client(url=b.url)
            finished = await client_b.threads.get_state(tid)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        # A wakes up mid-answer with a lease it no longer holds: it must stop, not write.
        await asyncio.sleep(3)
        assert (await client_b.threads.get_state(tid)) == finished
        assert_done_exactly_once(data, run_id)
        assert leases.holders(run_id) == [a.proc.pid, b.proc.pid]
        assert (await client_a.runs.get(tid, run_id))["status"] == "success"
    finally:
        await leases.stop()
        a.stop()
        b.stop()


# --- a server and the local CLI ----------------------------------------------------------


async def test_a_local_chat_killed_mid_run_is_finished_by_the_server_exactly_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = await asyncio.to_thread(LiveServer, data, None, SHARED)
    cli = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "chat", "-m", CREATE, "--json"],
        cwd=REPO,
        env=offline_env(data, **SHARED),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    leases = LeaseWatch(data / "runs.sqlite").start()
    try:
        (run_id, tid, _), *_ = await wait_for(
            lambda: runs(data), "the CLI's turn as a run in runs.sqlite", gave_up=exited(cli)
        )
        await wait_for(lambda: task_rows(data), "the task the turn creates", gave_up=exited(cli))
        cli.kill()  # mid-answer: the task is written, the answer is still streaming
        cli.wait(timeout=10)
        assert run_status(data, run_id) == "running"

        await wait_for(
            lambda: run_status(data, run_id) == "success", "the server finishing the run"
        )
        assert_done_exactly_once(data, run_id)
        assert leases.holders(run_id) == [cli.pid, server.proc.pid], "the CLI, then the server"
        state = await get_client(url=server.url).threads.get_state(tid)
        values = state["values"]
        assert isinstance(values, dict)
        assert str(values["messages"][-1]["content"]).startswith("Created TASK-0001")
    finally:
        await leases.stop()
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        server.stop()


# --- a server and `taskagent mcp` --------------------------------------------------------


async def test_an_mcp_ask_agent_killed_mid_run_is_finished_by_the_server_exactly_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    server = await asyncio.to_thread(LiveServer, data, None, SHARED)
    session = contextlib.AsyncExitStack()
    leases = LeaseWatch(data / "runs.sqlite").start()
    try:
        client = await session.enter_async_context(mcp_stdio(data, **SHARED))
        call = asyncio.create_task(client.call_tool("ask_agent", {"message": CREATE}))

        def call_ended() -> str | None:
            return f"ask_agent returned first: {call.result()}" if call.done() else None

        (run_id, tid, _), *_ = await wait_for(
            lambda: runs(data), "ask_agent's turn as a run in runs.sqlite", gave_up=call_ended
        )
        await wait_for(
            lambda: event_seqs(data, run_id), "the run's first event", gave_up=call_ended
        )
        pid = await wait_for(lambda: lease_pid(data, run_id), "the run's lease owner")
        mcp_process = psutil.Process(pid)
        assert pid != server.proc.pid and "mcp" in mcp_process.cmdline()
        os.kill(pid, signal.SIGKILL)  # before the tool: the model's first reply is still paced
        mcp_process.wait(timeout=10)
        assert task_rows(data) == []
        assert run_status(data, run_id) == "running"
        call.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await call

        await wait_for(
            lambda: run_status(data, run_id) == "success", "the server finishing the run"
        )
        assert_done_exactly_once(data, run_id)
        assert leases.holders(run_id) == [pid, server.proc.pid], "taskagent mcp, then the server"
        state = await get_client(url=server.url).threads.get_state(tid)
        values = state["values"]
        assert isinstance(values, dict)
        assert str(values["messages"][-1]["content"]).startswith("Created TASK-0001")
    finally:
        await leases.stop()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(20):
                await session.aclose()
        server.stop()


# --- serve --workers ---------------------------------------------------------------------


async def test_two_workers_share_one_port_and_run_every_turn_exactly_once_even_if_one_dies(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    paced = {**SHARED, "TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": "50"}
    server = await asyncio.to_thread(LiveServer, data, None, paced, ("--workers", "2"), 90)
    leases = LeaseWatch(data / "runs.sqlite").start()
    try:
        workers = await wait_for(lambda: worker_pids(server), "both workers serving", timeout=90)
        client = get_client(url=server.url, timeout=TAKEOVER_S)
        threads = [(await client.threads.create())["thread_id"] for _ in range(21)]
        solo_titles = [f"Load {n:02d}" for n in range(20)]
        queued_titles = [f"Queued {n}" for n in range(5)]

        async def turn(tid: str, title: str) -> str:
            run = await client.runs.create(
                tid, "agent", input=human(f"Create a task called {title}")
            )
            await client.runs.join(tid, run["run_id"])
            return str((await client.runs.get(tid, run["run_id"]))["status"])

        queued = threads[20]

        async def enqueue(title: str) -> str:
            run = await client.runs.create(
                queued,
                "agent",
                input=human(f"Create a task called {title}"),
                multitask_strategy="enqueue",
            )
            return str(run["run_id"])

        async with asyncio.timeout(120):
            answers = await asyncio.gather(
                *(turn(tid, title) for tid, title in zip(threads, solo_titles, strict=False)),
                *(enqueue(title) for title in queued_titles),
            )
            statuses, queued_ids = answers[:20], answers[20:]
            for run_id in queued_ids:
                await client.runs.join(queued, run_id)
            queued_statuses = [
                str((await client.runs.get(queued, run_id))["status"]) for run_id in queued_ids
            ]

        assert statuses == ["success"] * 20
        assert queued_statuses == ["success"] * 5
        titles = sorted(title for _, title in task_rows(data))
        assert titles == sorted(solo_titles + queued_titles), "every task exactly once"
        tool_audit = query(data / "tasks.sqlite", "SELECT COUNT(*) FROM audit WHERE kind = 'tool'")
        assert tool_audit == [(25,)]
        owners = leases.pids()
        assert owners == set(workers), f"lease owners {owners}, workers {workers}"

        # kill -9 the worker running a turn, mid-answer: the other worker finishes it.
        seen: list[StreamPart] = []
        async for part in client.runs.stream(
            threads[0], "agent", input=human(CREATE), stream_mode=MODES
        ):
            seen.append(part)
            if part.event == "updates" and "tool_execute" in part.data:
                break
        run_id = str(seen[0].data["run_id"])
        victim = lease_pid(data, run_id)
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        last = max(int(p.id) for p in seen if p.id is not None)
        # A new client: the pooled connections went down with the worker they were open to.
        rejoin = get_client(url=server.url)
        async with asyncio.timeout(TAKEOVER_S):
            rest = [
                p
                async for p in rejoin.runs.join_stream(threads[0], run_id, last_event_id=str(last))
            ]
        ids = [int(p.id) for p in seen + rest if p.id is not None]
        assert ids == list(range(1, len(ids) + 1)), f"event ids across the kill: {ids}"
        assert answer_of(rest).startswith("Created TASK-0026")
        assert run_status(data, run_id) == "success"
        assert [t for _, t in task_rows(data)].count("Quarterly review") == 1
        holders = leases.holders(run_id)
        assert holders[0] == victim and len(holders) == 2, f"lease holders {holders}"
    finally:
        await leases.stop()
        server.stop()


def test_workers_out_of_range_is_one_line_and_serves_nothing(tmp_path: Path) -> None:
    for workers in ("0", "999"):
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--workers", workers, "--port", "9"],
            cwd=REPO,
            env=offline_env(tmp_path / "data"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr.startswith(f"taskagent: configuration error: --workers {workers} is")
        assert done.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()
