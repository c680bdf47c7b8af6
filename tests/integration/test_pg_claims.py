"""Run claims on PostgreSQL: replicas claim side by side, never the same run, in thread order.

Each "replica" here is its own `RunStore` on one real database, claiming concurrently from
its own task; what matters is what the runs table says and the order each thread's runs
were taken in.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from server.runs.store import RunRecord, RunStore

LEASE_S = 60.0
THREADS, RUNS_PER_THREAD, REPLICAS = 12, 6, 4


async def open_store(tmp_path: Path, url: str, replica: str) -> RunStore:
    # Every replica's runs store has the same name, and with it the same advisory lock.
    return await RunStore.open(
        tmp_path / replica / "runs.sqlite",
        busy_timeout_ms=5000,
        synchronous="NORMAL",
        database_url=url,
    )


async def queue(store: RunStore, run_id: str, thread: str) -> None:
    record = RunRecord(run_id, thread, "me", "agent", "chat", "pending", "enqueue", {}, {})
    await store.admit(
        record,
        key=None,
        key_ttl=timedelta(hours=1),
        max_pending=10_000,
        lease_owner="admission",
        lease_s=LEASE_S,
    )


async def test_racing_replicas_claim_every_run_once_and_each_thread_in_order(
    tmp_path: Path, pg_url: str
) -> None:
    stores = [await open_store(tmp_path, pg_url, f"r{i}") for i in range(REPLICAS)]
    try:
        # The first run of each thread starts leased to the admitting process; give those
        # back so that the replicas race for every run, the first ones included.
        for index in range(RUNS_PER_THREAD):
            for thread in range(THREADS):
                await queue(stores[0], f"t{thread}-{index}", f"t{thread}")
        await stores[0].release("admission")

        taken: dict[str, list[str]] = defaultdict(list)  # run id -> replicas that took it
        order: dict[str, list[int]] = defaultdict(list)  # thread -> run indexes as taken
        busy: set[str] = set()
        overlaps: list[str] = []
        rng = random.Random(15)

        async def replica(number: int) -> None:
            store, owner = stores[number], f"replica-{number}"
            idle = 0
            while idle < 20:
                claimed = await store.claim(owner, LEASE_S, 3)
                idle = 0 if claimed else idle + 1
                for run in claimed:
                    taken[run.run_id].append(owner)
                    thread, index = run.thread_id, int(run.run_id.rsplit("-", 1)[1])
                    if thread in busy:
                        overlaps.append(run.run_id)
                    busy.add(thread)
                    order[thread].append(index)
                for run in claimed:
                    await asyncio.sleep(rng.uniform(0, 0.01))
                    busy.discard(run.thread_id)
                    assert await store.set_status(run.run_id, "success", lease_owner=owner)
                await asyncio.sleep(0 if claimed else 0.02)

        await asyncio.gather(*(replica(i) for i in range(REPLICAS)))

        assert {run_id: len(owners) for run_id, owners in taken.items() if len(owners) != 1} == {}
        assert len(taken) == THREADS * RUNS_PER_THREAD
        assert overlaps == [], "two runs of one thread ran at once"
        assert all(indexes == sorted(indexes) for indexes in order.values()), order
        assert await stores[1].unfinished() == []
        # More than one replica did the work: the claims really ran side by side.
        assert len({owner for owners in taken.values() for owner in owners}) > 1
    finally:
        for store in stores:
            await store.close()


async def test_a_claim_does_not_wait_for_another_writer_of_the_runs_table(
    tmp_path: Path, pg_url: str
) -> None:
    writer = await open_store(tmp_path, pg_url, "w")
    claimer = await open_store(tmp_path, pg_url, "c")
    try:
        await queue(writer, "r1", "t")
        await writer.release("admission")
        held, done = asyncio.Event(), asyncio.Event()

        async def long_admission() -> None:
            # Whatever a store does in `BEGIN IMMEDIATE` holds the runs table's write lock.
            await writer._conn.execute("BEGIN IMMEDIATE")
            held.set()
            await done.wait()
            await writer._conn.execute("ROLLBACK")

        holder = asyncio.create_task(long_admission())
        await held.wait()
        try:
            claimed = await asyncio.wait_for(claimer.claim("c", LEASE_S, 10), timeout=5)
        finally:
            done.set()
            await holder
        assert [run.run_id for run in claimed] == ["r1"]
    finally:
        await writer.close()
        await claimer.close()
