"""Admission on the real server: concurrent requests, idempotency keys, per-user limits.

Each test starts `python -m server.cli.main serve` on loopback and races it with real HTTP
requests; what counts is the status and sentence each client gets and the rows on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from faults.client import chat_body
from faults.server import ServerProcess
from tests.integration.conftest import LiveServer
from tests.integration.test_crash_recovery import CREATE, run_harness

pytestmark = pytest.mark.integration

PARALLEL = 20
# A model that takes this long to start answering keeps a run in progress while others race.
SLOW_FIRST_TOKEN_MS = "4000"
ALICE = {"X-Api-Key": "k-alice-0000"}
BOB = {"X-Api-Key": "k-bob-00000"}
KEYS = "k-alice-0000:alice:write,k-bob-00000:bob:write"


def rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture
def live_server(tmp_path: Path):
    server = LiveServer(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def slow_server(tmp_path: Path):
    server = LiveServer(
        tmp_path / "data", env={"TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": SLOW_FIRST_TOKEN_MS}
    )
    yield server
    server.stop()


async def warm_connections(http: httpx.AsyncClient) -> None:
    """Open PARALLEL keep-alive connections, so the racing requests arrive together."""
    await asyncio.gather(*(http.get("/ok") for _ in range(PARALLEL)))


async def until_running(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    for _ in range(300):
        if (await http.get(path, headers=headers)).json()["status"] == "running":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never started running")


async def test_parallel_reject_runs_on_an_idle_thread_admit_exactly_one(slow_server, tmp_path):
    async with httpx.AsyncClient(base_url=slow_server.url, timeout=60) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"input": human("list my tasks"), "multitask_strategy": "reject"}
        await warm_connections(http)
        answers = await asyncio.gather(
            *(http.post(f"/threads/{thread_id}/runs", json=body) for _ in range(PARALLEL))
        )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 1, 409: PARALLEL - 1}, [a.text for a in answers]
    refused = [a.json()["detail"] for a in answers if a.status_code == 409]
    assert all("multitask_strategy=reject refuses a second one" in d for d in refused)
    runs = rows(
        tmp_path / "data" / "runs.sqlite", "SELECT run_id FROM runs WHERE thread_id = ?", thread_id
    )
    [accepted] = [a.json()["run_id"] for a in answers if a.status_code == 200]
    assert runs == [(accepted,)]


async def test_parallel_creation_of_one_thread_id_with_do_nothing_returns_that_thread(
    live_server, tmp_path
):
    body = {"thread_id": "shared-thread", "if_exists": "do_nothing", "metadata": {"n": 1}}
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        await warm_connections(http)
        answers = await asyncio.gather(*(http.post("/threads", json=body) for _ in range(PARALLEL)))
        assert [a.status_code for a in answers] == [200] * PARALLEL, [a.text for a in answers]
        assert {a.json()["thread_id"] for a in answers} == {"shared-thread"}
        assert len({a.json()["created_at"] for a in answers}) == 1
        clash = await http.post("/threads", json={"thread_id": "shared-thread"})
        assert clash.status_code == 409 and "already exists" in clash.json()["detail"]
    threads = rows(tmp_path / "data" / "tasks.sqlite", "SELECT thread_id FROM threads")
    assert threads == [("shared-thread",)]


async def test_a_server_killed_right_after_admission_keeps_the_key_with_its_run(tmp_path):
    data, arm = tmp_path / "data", tmp_path / "arm"
    server = ServerProcess(data, env={"FAULTS_KILL_ARM": str(arm)}, killpoints=True)
    key = {"Idempotency-Key": "invoice-7"}
    body = chat_body("Create a task called Pay invoice seven")
    await asyncio.to_thread(server.start)
    try:
        arm.write_text("after_run_insert 1")  # dies once the run is stored, before it starts
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            with contextlib.suppress(httpx.HTTPError):
                await http.post("/chat", json=body, headers=key)
        assert await asyncio.to_thread(server.wait_dead, 10), "the kill point was not reached"
        [(run_id,)] = rows(data / "runs.sqlite", "SELECT run_id FROM runs")
        # The key was stored with its run, in the same transaction.
        assert rows(data / "runs.sqlite", "SELECT key, run_id FROM idempotency") == [
            ("invoice-7", run_id)
        ]

        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            retried = await http.post("/chat", json=body, headers=key)
            again = await http.post("/chat", json=body, headers=key)
        assert retried.status_code == again.status_code == 200, retried.text
        assert retried.json()["run_id"] == again.json()["run_id"] == run_id
        assert rows(data / "runs.sqlite", "SELECT run_id FROM runs") == [(run_id,)]
        assert rows(data / "tasks.sqlite", "SELECT title FROM tasks") == [("Pay invoice seven",)]
    finally:
        await asyncio.to_thread(server.close)


async def test_replaying_a_key_whose_run_was_deleted_is_refused_and_runs_nothing(
    live_server, tmp_path
):
    key = {"Idempotency-Key": "report-1"}
    body = {"input": human("Create a task called Quarterly report")}
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        first = await http.post(f"/threads/{thread_id}/runs/wait", json=body, headers=key)
        assert first.status_code == 200, first.text
        run_path = first.headers["Content-Location"]
        assert (await http.delete(run_path)).status_code == 204
        replays = [
            await http.post(f"/threads/{thread_id}/runs/wait", json=body, headers=key)
            for _ in range(3)
        ]
    for replay in replays:
        assert replay.status_code == 410, replay.text
        assert replay.json()["detail"] == (
            "The run this Idempotency-Key created has been deleted; send the request with a"
            " new key to run it again."
        )
    data = tmp_path / "data"
    assert rows(data / "runs.sqlite", "SELECT run_id FROM runs") == []
    assert rows(data / "tasks.sqlite", "SELECT title FROM tasks") == [("Quarterly report",)]


async def test_a_cut_off_turn_being_finished_holds_up_no_admission(tmp_path):
    # A local turn cut off after its tool committed: the server takes it over at start-up and
    # finishes it (a model call that takes SLOW_FIRST_TOKEN_MS). Requests on that thread and
    # on others are admitted at once meanwhile; the one on that thread runs after it.
    data = tmp_path / "data"
    crashed = run_harness(data, "--message", CREATE, "--crash-at", "after_tool_commit", killed=True)
    cut_off = crashed.one("THREAD")
    keys = "k-local-0000:local:write,k-bob-00000:bob:write"
    server = LiveServer(
        data,
        env={
            "TASKAGENT_API_KEYS": keys,
            "TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": SLOW_FIRST_TOKEN_MS,
        },
    )
    local = {"X-Api-Key": "k-local-0000"}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            bob_thread = (await http.post("/threads", json={}, headers=BOB)).json()["thread_id"]
            started = time.monotonic()
            answers = await asyncio.gather(
                *(
                    http.post(path, json={"input": human("list my tasks")}, headers=headers)
                    for path, headers in (
                        (f"/threads/{cut_off}/runs", {**local, "Idempotency-Key": "a-1"}),
                        (f"/threads/{bob_thread}/runs", {**BOB, "Idempotency-Key": "b-1"}),
                    )
                )
            )
            assert time.monotonic() - started < int(SLOW_FIRST_TOKEN_MS) / 1000
            assert [answer.status_code for answer in answers] == [200, 200], answers
            queued = answers[0].json()
            joined = await http.get(
                f"/threads/{cut_off}/runs/{queued['run_id']}/join", headers=local
            )
            assert joined.status_code == 200
        ran = rows(
            data / "runs.sqlite",
            "SELECT status, attempt FROM runs WHERE thread_id = ? ORDER BY rowid",
            cut_off,
        )
        # The cut-off turn (attempt 2: taken over), then the request queued behind it.
        assert ran == [("success", 2), ("success", 1)]
    finally:
        server.stop()


async def test_per_user_thread_limit_refuses_the_next_thread_and_creates_nothing(tmp_path):
    data = tmp_path / "data"
    server = LiveServer(
        data, env={"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_MAX_THREADS_PER_USER": "3"}
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            made = [
                await http.post("/threads", json={"thread_id": f"a-{n}"}, headers=ALICE)
                for n in range(3)
            ]
            assert [m.status_code for m in made] == [200, 200, 200]
            sentence = (
                "You already have 3 threads, the most allowed per user; delete threads you no"
                " longer need before creating more."
            )
            refused = [
                await http.post("/threads", json={"thread_id": "a-4"}, headers=ALICE),
                await http.post("/threads", json={}, headers=ALICE),
                await http.post("/chat", json={"message": "list my tasks"}, headers=ALICE),
                await http.post(
                    "/threads/a-5/runs",
                    json={"input": human("list my tasks"), "if_not_exists": "create"},
                    headers=ALICE,
                ),
                await http.post("/runs/stream", json={"input": human("hi")}, headers=ALICE),
            ]
            for answer in refused:
                assert answer.status_code == 429, answer.text
                assert answer.json()["detail"] == sentence
            # An existing thread is still found at the limit, and other users are unaffected.
            same = await http.post(
                "/threads", json={"thread_id": "a-0", "if_exists": "do_nothing"}, headers=ALICE
            )
            assert same.status_code == 200
            assert (await http.post("/threads", json={}, headers=BOB)).status_code == 200
        owned = rows(data / "tasks.sqlite", "SELECT owner, COUNT(*) FROM threads GROUP BY owner")
        assert owned == [("alice", 3), ("bob", 1)]
        assert rows(data / "runs.sqlite", "SELECT run_id FROM runs") == []
    finally:
        server.stop()


async def test_per_user_queued_run_limit_refuses_one_more_and_stores_nothing(tmp_path):
    data = tmp_path / "data"
    server = LiveServer(
        data,
        env={
            "TASKAGENT_API_KEYS": KEYS,
            "TASKAGENT_MAX_QUEUED_RUNS_PER_USER": "2",
            "TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": SLOW_FIRST_TOKEN_MS,
        },
    )
    body = {"input": human("list my tasks"), "multitask_strategy": "enqueue"}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            thread_id = (await http.post("/threads", json={}, headers=ALICE)).json()["thread_id"]
            first = await http.post(f"/threads/{thread_id}/runs", json=body, headers=ALICE)
            await until_running(http, f"/threads/{thread_id}/runs/{first.json()['run_id']}", ALICE)
            queued = [
                await http.post(f"/threads/{thread_id}/runs", json=body, headers=ALICE)
                for _ in range(2)
            ]
            assert [q.status_code for q in queued] == [200, 200]
            over = await http.post(f"/threads/{thread_id}/runs", json=body, headers=ALICE)
            assert over.status_code == 429, over.text
            assert over.json()["detail"] == (
                "You already have 2 runs waiting to start, the most allowed per user; wait for"
                " them or cancel some before queueing more."
            )
            over_chat = await http.post(
                "/chat", json={"message": "list my tasks", "thread_id": thread_id}, headers=ALICE
            )
            assert over_chat.status_code == 429
            # Bob's queue is his own.
            bob_thread = (await http.post("/threads", json={}, headers=BOB)).json()["thread_id"]
            bob = await http.post(f"/threads/{bob_thread}/runs", json=body, headers=BOB)
            assert bob.status_code == 200
        stored = rows(data / "runs.sqlite", "SELECT run_id FROM runs WHERE owner = 'alice'")
        assert sorted(stored) == sorted((r.json()["run_id"],) for r in [first, *queued])
    finally:
        server.stop()
