"""Run leases on a real runs.sqlite: who may claim what, and when."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from server.runs.store import RunRecord, RunStore, ThreadBusy

LEASE_S = 60.0


def run(run_id: str, thread: str, strategy: Any = "enqueue") -> RunRecord:
    return RunRecord(run_id, thread, "me", "agent", "chat", "pending", strategy, {}, {})


async def admit(store: RunStore, record: RunRecord, owner: str = "A") -> RunRecord:
    admission = await store.admit(
        record,
        key=None,
        key_ttl=timedelta(hours=1),
        max_pending=100,
        lease_owner=owner,
        lease_s=LEASE_S,
    )
    return admission.run


@pytest.fixture
async def store(tmp_path: Path):
    opened = await RunStore.open(
        tmp_path / "runs.sqlite", busy_timeout_ms=5000, synchronous="NORMAL"
    )
    yield opened
    await opened.close()


async def test_a_run_on_an_idle_thread_starts_leased_and_the_next_one_waits(store):
    first = await admit(store, run("r1", "t"))
    second = await admit(store, run("r2", "t"))
    assert (first.status, first.lease_owner) == ("running", "A")
    assert (second.status, second.lease_owner) == ("pending", None)
    # Nobody may take the queued run while the thread's first one runs under a live lease.
    assert await store.claim("B", LEASE_S, 10) == []
    assert await store.set_status("r1", "success", lease_owner="A")
    [claimed] = await store.claim("B", LEASE_S, 10)
    assert (claimed.run_id, claimed.lease_owner, claimed.attempt) == ("r2", "B", 1)


async def test_an_expired_lease_is_taken_over_as_a_new_attempt_before_queued_runs(store):
    await admit(store, run("r1", "t"))
    await admit(store, run("r2", "t"))
    await store.release("A")  # as if A died and its lease ran out
    [taken] = await store.claim("B", LEASE_S, 10)
    assert (taken.run_id, taken.lease_owner, taken.attempt) == ("r1", "B", 2)
    # A, back from a stall, no longer holds the run: its end is not recorded.
    assert not await store.set_status("r1", "success", lease_owner="A")
    assert await store.renew("A", LEASE_S) == {}
    assert await store.renew("B", LEASE_S) == {"r1": None}


async def test_queued_runs_start_in_order_one_per_thread(store):
    await admit(store, run("r1", "t"))
    for n in (2, 3):
        await admit(store, run(f"r{n}", "t"))
    other = await admit(store, run("x1", "other"))
    assert other.status == "running"  # another thread is not held up
    assert await store.claim("B", LEASE_S, 10) == []
    order, finishing = [], "r1"
    for _ in range(2):
        await store.set_status(finishing, "success")
        claimed = await store.claim("B", LEASE_S, 10)
        assert len(claimed) == 1
        finishing = claimed[0].run_id
        order.append(finishing)
    assert order == ["r2", "r3"]


async def test_admission_is_one_transaction_across_connections(tmp_path: Path):
    # Two stores on one file stand for two processes: exactly one reject wins.
    path = tmp_path / "runs.sqlite"
    stores = [
        await RunStore.open(path, busy_timeout_ms=5000, synchronous="NORMAL") for _ in range(2)
    ]
    try:
        results = await asyncio.gather(
            *(
                admit(store, run(f"r{n}", "t", "reject"), owner=str(n))
                for n, store in enumerate(stores)
            ),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["RunRecord", "ThreadBusy"]
        assert all(isinstance(r, RunRecord | ThreadBusy) for r in results)
    finally:
        for store in stores:
            await store.close()


async def test_cancel_of_a_running_run_reaches_its_owner_at_renewal(store):
    await admit(store, run("r1", "t"))
    await admit(store, run("r2", "t"))
    assert await store.request_cancel("r2", "interrupt") == "pending"
    assert (await store.get("r2")).status == "interrupted"
    assert await store.request_cancel("r1", "rollback") == "running"
    assert await store.renew("A", LEASE_S) == {"r1": "rollback"}
    before = time.time()
    assert await store.set_status("r1", "interrupted", lease_owner="A")
    assert await store.renew("A", LEASE_S) == {}
    assert (await store.get("r1")).lease_owner is None
    assert time.time() - before < 5


async def test_a_session_claims_only_its_own_queued_runs_but_takes_over_dead_ones(store):
    await admit(store, run("r1", "t"))
    await admit(store, run("server-queued", "t"))
    await admit(store, run("x1", "u"))
    await admit(store, run("mine", "u"))
    await store.set_status("r1", "success")
    await store.set_status("x1", "success")
    # A CLI session (pending_of: its own ids) leaves the server's queued run alone.
    [claimed] = await store.claim("cli", LEASE_S, 10, pending_of={"mine"})
    assert claimed.run_id == "mine"
    await admit(store, run("crashed", "v"), owner="dead-server")
    await store.release("dead-server")
    [taken] = await store.claim("cli", LEASE_S, 10, pending_of=set())
    assert (taken.run_id, taken.attempt) == ("crashed", 2)
    assert (await store.get("server-queued")).status == "pending"
