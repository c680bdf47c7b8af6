"""Replicas on one PostgreSQL database (`DATABASE_URL`): every one serves everything.

Real processes only: a PostgreSQL server from Debian's package in a scratch dir, two or
three `taskagent serve` replicas on loopback with separate data dirs (nothing is shared but
the database), the stock langgraph-sdk as the client, and a round-robin TCP balancer in
front where a test needs one. The verdicts come from the database: tasks, audit rows, runs,
the event log. The offline engine is paced like a hosted model so a kill lands inside a turn.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.schema import StreamPart

from faults.shared import LeaseWatch
from scripts.local_pg import LocalPostgres
from scripts.rr_proxy import RoundRobin
from server.runs.store import RunStore
from tests.integration.conftest import REPO, LiveServer, free_port, offline_env
from tests.integration.test_shared_data_dir import (
    CREATE,
    MODES,
    TAKEOVER_S,
    answer_of,
    human,
    wait_for,
)

pytestmark = pytest.mark.integration

REPLICA = {
    "TASKAGENT_RUN_LEASE_S": "2",
    "TASKAGENT_RUN_POLL_S": "0.2",
    "TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": "700",
    "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "40",
}


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the database as an operator would, with psql's eyes: committed rows only."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


async def replicas(
    tmp_path: Path, url: str, count: int = 2, env: dict[str, str] | None = None
) -> list[LiveServer]:
    """Start `count` replicas on `url`, each with a data dir of its own (and `env` added)."""
    env = {**REPLICA, **(env or {}), "DATABASE_URL": url}
    return list(
        await asyncio.gather(
            *(
                asyncio.to_thread(LiveServer, tmp_path / f"replica{n}", None, env, (), 60)
                for n in range(count)
            )
        )
    )


def run_status(url: str, run_id: str) -> str | None:
    rows = query(url, "SELECT status FROM runs WHERE run_id = %s", run_id)
    return str(rows[0][0]) if rows else None


def assert_done_exactly_once(url: str, run_id: str) -> None:
    """The run succeeded, its task exists once, its tool ran once, its event log has no gap."""
    assert run_status(url, run_id) == "success"
    assert query(url, "SELECT id, title FROM tasks") == [("TASK-0001", "Quarterly review")]
    tools = query(url, "SELECT tool, success FROM audit WHERE kind = 'tool' ORDER BY id")
    assert tools == [("create_task", 1)], "the tool must run (and be audited) once"
    seqs = [
        int(seq)
        for (seq,) in query(
            url, "SELECT seq FROM run_events WHERE run_id = %s ORDER BY seq", run_id
        )
    ]
    assert seqs == list(range(1, len(seqs) + 1)), f"logged event ids {seqs}"


async def started_run(client: Any) -> tuple[str, dict[str, Any]]:
    """A new thread and a background run of CREATE on it."""
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "agent", input=human(CREATE), stream_mode=MODES)
    return thread_id, run


def stop_all(servers: list[LiveServer]) -> None:
    for server in servers:
        server.stop()


async def test_every_replica_serves_what_another_wrote(tmp_path: Path, pg_url: str) -> None:
    a, b = await replicas(tmp_path, pg_url)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            turn = await http.post(f"{a.url}/chat", json={"message": "add a task to buy milk"})
            assert turn.status_code == 200, turn.text
            thread_id = turn.json()["thread_id"]
            tasks = (await http.get(f"{b.url}/tasks")).json()
            assert [t["title"] for t in tasks["tasks"]] == ["Buy milk"]
            # The thread goes on through the other replica, with its history.
            more = await http.post(
                f"{b.url}/chat", json={"message": "list my tasks", "thread_id": thread_id}
            )
            assert more.status_code == 200 and "Buy milk" in more.json()["message"]
        client_a, client_b = get_client(url=a.url), get_client(url=b.url)
        state = await client_a.threads.get_state(thread_id)
        assert isinstance(state["values"], dict)
        asked = [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]
        assert asked == ["add a task to buy milk", "list my tasks"]
        assistant = await client_a.assistants.create("agent", name="Replica test")
        assert (await client_b.assistants.get(assistant["assistant_id"]))["name"] == "Replica test"
        await client_b.store.put_item(["notes"], "k", {"v": 1})
        assert (await client_a.store.get_item(["notes"], "k"))["value"] == {"v": 1}
        found = await client_b.threads.search(metadata={"graph_id": "agent"})
        assert thread_id in [t["thread_id"] for t in found]
        # Tables were created once, by whichever replica came first.
        assert query(pg_url, "SELECT version FROM schema_versions WHERE store = 'runs'") == [(3,)]
    finally:
        stop_all([a, b])


@pytest.mark.parametrize("listen", ["true", "false"], ids=["notified", "polling"])
async def test_a_run_on_one_replica_is_followed_live_from_another(
    tmp_path: Path, pg_url: str, listen: str
) -> None:
    # "false": as behind a transaction-pooling pgbouncer, where LISTEN cannot work.
    a, b = await replicas(tmp_path, pg_url, env={"TASKAGENT_PG_LISTEN": listen})
    try:
        client_a, client_b = get_client(url=a.url), get_client(url=b.url)
        thread_id, run = await started_run(client_a)
        live = [p async for p in client_b.runs.join_stream(thread_id, run["run_id"])]
        assert answer_of(live).startswith("Created TASK-0001")
        replay = [p async for p in client_a.runs.join_stream(thread_id, run["run_id"])]
        assert [(p.id, p.event, p.data) for p in live] == [(p.id, p.event, p.data) for p in replay]
        ids = [int(p.id) for p in live if p.id is not None]
        assert ids == list(range(1, len(ids) + 1))
        assert_done_exactly_once(pg_url, run["run_id"])
        listeners = query(
            pg_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN %%'",
        )[0][0]
        assert (listeners > 0) == (listen == "true"), f"{listeners} sessions listening"
    finally:
        stop_all([a, b])


@pytest.mark.parametrize("kill_after", ["first event", "tool result"])
async def test_a_killed_replicas_run_is_finished_by_another_exactly_once(
    tmp_path: Path, pg_url: str, kill_after: str
) -> None:
    a, b = await replicas(tmp_path, pg_url)
    leases = LeaseWatch(pg_url).start()
    try:
        client_a = get_client(url=a.url)
        thread_id = (await client_a.threads.create())["thread_id"]
        seen: list[StreamPart] = []
        async for part in client_a.runs.stream(
            thread_id, "agent", input=human(CREATE), stream_mode=MODES
        ):
            seen.append(part)
            tool_done = part.event == "updates" and "tool_execute" in part.data
            if kill_after == "first event" or tool_done:
                a.kill()
                break
        run_id = str(seen[0].data["run_id"])
        assert run_status(pg_url, run_id) == "running"
        last = max(int(p.id) for p in seen if p.id is not None)
        async with asyncio.timeout(TAKEOVER_S):
            rest = [
                p
                async for p in get_client(url=b.url).runs.join_stream(
                    thread_id, run_id, last_event_id=str(last)
                )
            ]
        ids = [int(p.id) for p in seen + rest if p.id is not None]
        assert ids == list(range(1, len(ids) + 1)), f"event ids across the kill: {ids}"
        assert "Quarterly review" in answer_of(rest)
        assert_done_exactly_once(pg_url, run_id)
        assert leases.holders(run_id) == [a.proc.pid, b.proc.pid], "A ran it, then B"
    finally:
        await leases.stop()
        stop_all([a, b])


async def test_a_replica_stalled_past_its_lease_races_the_takeover_and_writes_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    """The forced race: A is frozen mid-run, B takes the run over, then A wakes up."""
    a, b = await replicas(tmp_path, pg_url)
    leases = LeaseWatch(pg_url).start()
    try:
        client_a, client_b = get_client(url=a.url), get_client(url=b.url)
        thread_id, run = await started_run(client_a)
        run_id = str(run["run_id"])
        await wait_for(lambda: query(pg_url, "SELECT 1 FROM tasks"), "the task the turn creates")
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            await wait_for(lambda: run_status(pg_url, run_id) == "success", "B finishing the run")
            finished = await client_b.threads.get_state(thread_id)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        await asyncio.sleep(3)  # A goes on with a lease it no longer holds: it must stop
        assert (await client_b.threads.get_state(thread_id)) == finished
        assert_done_exactly_once(pg_url, run_id)
        assert leases.holders(run_id) == [a.proc.pid, b.proc.pid]
    finally:
        await leases.stop()
        stop_all([a, b])


async def test_behind_a_balancer_turns_go_on_when_a_replica_dies(
    tmp_path: Path, pg_url: str
) -> None:
    servers = await replicas(tmp_path, pg_url, count=2)
    balancer = RoundRobin([s.port for s in servers])
    port = free_port()
    proxy = asyncio.create_task(balancer.serve(port))
    try:
        await asyncio.sleep(0.2)
        url = f"http://127.0.0.1:{port}"

        async def turn(message: str) -> httpx.Response:
            # A new connection per turn, as many clients behind a balancer make.
            async with httpx.AsyncClient(timeout=60) as http:
                return await http.post(f"{url}/chat", json={"message": message})

        before = [await turn(f"add a task to water plant {n}") for n in range(4)]
        assert all(r.status_code == 200 for r in before), [r.text for r in before]
        assert all(count > 0 for count in balancer.served.values()), balancer.served
        servers[0].kill()
        after = [await turn(f"add a task to call friend {n}") for n in range(4)]
        assert all(r.status_code == 200 for r in after), [r.text for r in after]
        titles = sorted(str(t) for (t,) in query(pg_url, "SELECT title FROM tasks"))
        assert len(titles) == 8 and len(set(titles)) == 8
    finally:
        proxy.cancel()
        stop_all(servers)


def test_a_bad_database_url_is_one_line_and_serves_nothing(tmp_path: Path) -> None:
    for url, says in (
        ("mysql://root@127.0.0.1/tasks", "DATABASE_URL must be a PostgreSQL URL"),
        (f"postgresql://nobody@127.0.0.1:{free_port()}/x", "PostgreSQL cannot be used"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(free_port())],
            cwd=REPO,
            env=offline_env(tmp_path / "data", DATABASE_URL=url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and says in lines[0], lines


# Its own server, to stop and start; the session's fixture makes a machine without PostgreSQL
# skip this test like the others.
@pytest.mark.usefixtures("postgres")
async def test_a_database_restart_is_a_clean_503_and_then_business_as_usual(
    tmp_path: Path,
) -> None:
    database = LocalPostgres(Path(tempfile.mkdtemp(prefix="taskagent-pg-"))).start()
    try:
        (server,) = await replicas(tmp_path, database.url(), count=1)
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                first = await http.post("/chat", json={"message": "add a task to buy milk"})
                assert first.status_code == 200, first.text
                # What a load balancer's health check sees, before, during and after.
                ready = await http.get("/ready")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"]["database"] == "ok"
                database.stop()
                for request in (http.get("/tasks"), http.post("/chat", json={"message": "hi"})):
                    down = await request
                    assert down.status_code == 503, down.text
                    assert down.headers["retry-after"] and "try again" in down.json()["detail"]
                unready = await http.get("/ready")
                assert unready.status_code == 503, unready.text
                assert unready.json()["failed"] == ["database"]
                database.start()
                again = await http.post("/chat", json={"message": "add a task to call mum"})
                assert again.status_code == 200, again.text
                assert (await http.get("/ready")).status_code == 200
                titles = {t["title"] for t in (await http.get("/tasks")).json()["tasks"]}
                assert titles == {"Buy milk", "Call mum"}
            logged = "".join(server.output)
            assert "Traceback" not in logged, logged[logged.index("Traceback") - 300 :][:3000]
        finally:
            server.stop()
    finally:
        database.stop()
        shutil.rmtree(database.directory, ignore_errors=True)


@pytest.mark.usefixtures("postgres")
async def test_a_database_restart_mid_run_finishes_the_run_exactly_once(tmp_path: Path) -> None:
    database = LocalPostgres(Path(tempfile.mkdtemp(prefix="taskagent-pg-"))).start()
    url = database.url()
    try:
        a, b = await replicas(tmp_path, url)
        try:
            thread_id, run = await started_run(get_client(url=a.url))
            await asyncio.sleep(1.0)  # inside the paced turn
            assert run_status(url, run["run_id"]) == "running"
            database.stop()
            await asyncio.sleep(1.0)
            database.start()
            # Nobody acts: the run is finished by whichever replica holds it, exactly once.
            await wait_for(
                lambda: run_status(url, run["run_id"]) == "success",
                "the run cut off by the restart to finish",
            )
            assert_done_exactly_once(url, run["run_id"])
            replay = [
                p
                async for p in get_client(url=b.url).runs.join_stream(
                    thread_id, run["run_id"], last_event_id="0"
                )
            ]
            ids = [int(p.id) for p in replay if p.id is not None]
            assert ids == list(range(1, len(ids) + 1)), f"replayed ids {ids}"
            assert "Quarterly review" in answer_of(replay)
            after = await get_client(url=b.url).runs.wait(
                thread_id, "agent", input=human("list my tasks")
            )
            assert "Quarterly review" in str(after)
            logged = "".join(a.output + b.output)
            assert "Traceback" not in logged, logged[logged.index("Traceback") - 300 :][:3000]
        finally:
            stop_all([a, b])
    finally:
        database.stop()
        shutil.rmtree(database.directory, ignore_errors=True)


async def test_a_cancel_sent_to_one_replica_stops_the_run_on_another(
    tmp_path: Path, pg_url: str
) -> None:
    a, b = await replicas(tmp_path, pg_url)
    try:
        client_a, client_b = get_client(url=a.url), get_client(url=b.url)
        thread_id, run = await started_run(client_a)
        await wait_for(lambda: run_status(pg_url, run["run_id"]) == "running", "the run starting")
        await client_b.runs.cancel(thread_id, run["run_id"])
        await wait_for(
            lambda: run_status(pg_url, run["run_id"]) == "interrupted",
            "the run stopping",
            timeout=10,
        )
        assert query(pg_url, "SELECT id FROM tasks") == [], "stopped before its tool ran"
        assert (await client_a.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    finally:
        stop_all([a, b])


async def test_background_passes_run_on_one_replica_at_a_time(tmp_path: Path, pg_url: str) -> None:
    first, second = [
        await RunStore.open(
            tmp_path / "runs.sqlite", busy_timeout_ms=5000, synchronous="NORMAL", database_url=url
        )
        for url in (pg_url, pg_url)
    ]
    try:
        async with first.one_replica("event-retention") as mine:
            async with second.one_replica("event-retention") as theirs:
                assert mine and not theirs
            async with second.one_replica("thread-ttl") as other_pass:
                assert other_pass, "another pass is not held up"
        async with second.one_replica("event-retention") as theirs:
            assert theirs, "free again once the first is done"
    finally:
        await first.close()
        await second.close()
