import json
import sqlite3
from datetime import timedelta
from typing import Any

from server.runs.store import RunEvent, RunRecord, RunStatus, RunStore

ADMIT: dict[str, Any] = {
    "key": None,
    "key_ttl": timedelta(hours=1),
    "max_pending": 10,
    "lease_owner": "here",
    "lease_s": 60.0,
}


async def test_events_replay_after_an_id_and_old_logs_are_pruned(tmp_path):
    store = await RunStore.open(
        tmp_path / "runs.sqlite", busy_timeout_ms=1000, synchronous="NORMAL"
    )
    try:
        statuses: list[tuple[str, RunStatus]] = [("old", "success"), ("live", "running")]
        for run_id, status in statuses:
            await store.admit(
                RunRecord(
                    run_id,
                    f"thread-{run_id}",
                    "me",
                    "agent",
                    "chat",
                    status,
                    "enqueue",
                    {},
                    {},
                    created_at="2020-01-01T00:00:00+00:00",
                    updated_at="2020-01-01T00:00:00+00:00",
                ),
                **ADMIT,
            )
            if status != "running":
                await store.set_status(run_id, status)
                with sqlite3.connect(tmp_path / "runs.sqlite") as conn:  # it finished long ago
                    conn.execute(
                        "UPDATE runs SET updated_at = '2020-01-01' WHERE run_id = ?", (run_id,)
                    )
            await store.append(
                run_id, [RunEvent(n, "token", json.dumps({"n": n})) for n in range(1, 6)]
            )
        assert [e.seq for e in await store.events_after("old", 2)] == [3, 4, 5]
        assert await store.last_seq("live") == 5
        removed = await store.prune_events(timedelta(hours=1))
        assert removed == 5  # only the finished run's log goes; the live one stays whole
        assert await store.events_after("old", 0) == []
        assert len(await store.events_after("live", 0)) == 5
        assert [r.run_id for r in await store.unfinished()] == ["live"]
    finally:
        await store.close()


async def test_concurrent_appends_from_many_runs_do_not_collide(tmp_path):
    import asyncio

    store = await RunStore.open(
        tmp_path / "runs.sqlite", busy_timeout_ms=1000, synchronous="NORMAL"
    )
    try:

        async def write(run_id: str) -> None:
            for n in range(1, 21):
                await store.append(run_id, [RunEvent(n, "token", "{}")])

        await asyncio.gather(*(write(f"run-{i}") for i in range(10)))
        for i in range(10):
            assert await store.last_seq(f"run-{i}") == 20
    finally:
        await store.close()


async def test_a_log_that_cannot_be_written_ends_streams_with_an_error_not_a_hang(tmp_path):
    import asyncio

    from graph.redaction import Redactor
    from server.runs.channel import RunChannel

    store = await RunStore.open(
        tmp_path / "runs.sqlite", busy_timeout_ms=1000, synchronous="NORMAL"
    )
    channel = RunChannel(store, "r1", next_seq=1, redactor=Redactor())
    channel.publish("metadata", {"run_id": "r1"})
    await channel.wait_past(0)
    await store.close()  # the log's database goes away mid-run
    # Long enough that the redactor's held-back tail (the last words) is not all of it.
    channel.publish("token", {"text": "this text is lost"})
    await asyncio.wait_for(channel.wait_past(1), timeout=5)
    assert channel.done and channel.failure is not None
    channel.publish("token", {"text": "ignored"})  # later events are dropped, not raised
    await channel.close()


async def test_an_unfinished_run_resumes_with_the_rights_of_its_request(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = await RunStore.open(path, busy_timeout_ms=1000, synchronous="NORMAL")
    try:
        identity = {"role": "write", "model_tier": "offline", "request_id": "req-7"}
        run = RunRecord("r1", "t1", "bob", "agent", "chat", "running", "reject", {}, {})
        run.identity = identity
        await store.admit(run, **ADMIT)
        [unfinished] = await store.unfinished()
        context = unfinished.context()
        assert (context.user_id, context.role, context.model_tier) == ("bob", "write", "offline")
        assert context.request_id == "req-7"
    finally:
        await store.close()


async def test_runs_stored_before_identities_resume_read_only(tmp_path):
    path = tmp_path / "runs.sqlite"
    old_schema = (
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, owner TEXT NOT NULL,"
        " assistant_id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,"
        " multitask_strategy TEXT NOT NULL, payload TEXT NOT NULL, metadata TEXT NOT NULL,"
        " attempt INTEGER NOT NULL DEFAULT 1, error TEXT, created_at TEXT NOT NULL,"
        " updated_at TEXT NOT NULL)"
    )
    with sqlite3.connect(path) as conn:
        conn.execute(old_schema)
        conn.execute(
            "INSERT INTO runs VALUES ('r0', 't0', 'carol', 'agent', 'chat', 'running', 'reject',"
            " '{}', '{}', 1, NULL, '2026-01-01', '2026-01-01')"
        )
    store = await RunStore.open(path, busy_timeout_ms=1000, synchronous="NORMAL")
    try:
        [run] = await store.unfinished()
        assert run.context().user_id == "carol"
        assert run.context().role == "read"
    finally:
        await store.close()


async def test_a_finished_run_is_counted_once_when_its_status_write_is_retried(tmp_path):
    from prometheus_client import REGISTRY

    from server.runs.store import FINISHED

    def finished_count() -> float:
        return sum(
            REGISTRY.get_sample_value("taskagent_runs_total", {"status": status}) or 0.0
            for status in FINISHED
        )

    path = tmp_path / "runs.sqlite"
    store = await RunStore.open(path, busy_timeout_ms=0, synchronous="NORMAL")
    try:
        await store.admit(
            RunRecord("r1", "t1", "me", "agent", "chat", "running", "enqueue", {}, {}), **ADMIT
        )
        before = finished_count()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the database: the write fails
        try:
            await store.set_status("r1", "success")
        except sqlite3.OperationalError:
            pass
        else:
            raise AssertionError("the status write should have failed while the lock was held")
        assert finished_count() == before
        other.execute("ROLLBACK")
        other.close()
        await store.set_status("r1", "success")  # the retry goes through
        assert finished_count() == before + 1
        [status] = [r.status for r in await store.for_thread("t1")]
        assert status == "success"
    finally:
        await store.close()
