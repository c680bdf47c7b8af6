"""Cron claims on a real runs.sqlite: each slot is claimed once, missed slots once, lapsed again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.runs.crons import CronRecord, CronScheduler, CronStore, new_cron, next_slot
from server.runs.runner import TurnError
from server.runs.store import RunRecord, RunStore

HOURLY = "0 * * * *"


def cron(schedule: str = HOURLY, **fields: object) -> CronRecord:
    made = new_cron(
        owner="me",
        role="write",
        assistant_id="agent",
        thread_id="t-1",
        schedule=schedule,
        timezone=None,
        end_at=None,
        enabled=True,
        on_run_completed=None,
        payload={"input": {"messages": []}},
        metadata={},
    )
    for name, value in fields.items():
        setattr(made, name, value)
    return made


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[CronStore, CronStore]]:
    """Two connections to one runs.sqlite: two server processes, as far as SQLite can tell."""
    path = tmp_path / "runs.sqlite"
    await (await RunStore.open(path, busy_timeout_ms=5000, synchronous="NORMAL")).close()
    first = await CronStore.open(path, busy_timeout_ms=5000, synchronous="NORMAL")
    second = await CronStore.open(path, busy_timeout_ms=5000, synchronous="NORMAL")
    yield first, second
    await first.close()
    await second.close()


def hour(day: int, h: int) -> float:
    return datetime(2026, 12, day, h, tzinfo=UTC).timestamp()


async def test_a_due_slot_is_claimed_by_exactly_one_of_two_processes(stores):
    a, b = stores
    due = cron(next_run_at=hour(7, 10))
    await a.create(due, limit=10)
    now = hour(7, 10) + 5
    results = await asyncio.gather(a.claim(now, 30), b.claim(now, 30))
    claims = [pair for result in results for pair in result]
    assert [(c.cron_id, slot) for c, slot in claims] == [(due.cron_id, hour(7, 10))]
    assert claims[0][0].next_run_at == hour(7, 11)
    assert await a.claim(now + 1, 30) == [] and await b.claim(now + 1, 30) == []


async def test_slots_missed_while_down_fire_once_then_the_schedule_goes_on(stores):
    a, _ = stores
    late = cron(next_run_at=hour(7, 3))
    await a.create(late, limit=10)
    now = hour(7, 9) + 600  # six slots missed: 03:00 ... 09:00
    claims = await a.claim(now, 30)
    assert [slot for _, slot in claims] == [hour(7, 3)]  # one run, for the oldest slot
    await a.fired(claims[0][0], hour(7, 3), None)
    assert await a.claim(now + 60, 30) == []
    stored = await a.get(late.cron_id, "me")
    assert stored is not None and stored.next_run_at == hour(7, 10)


async def test_a_lapsed_claim_is_fired_again_for_the_same_slot(stores):
    a, b = stores
    await a.create(cron(next_run_at=hour(7, 10)), limit=10)
    now = hour(7, 10) + 1
    (claimed, slot), *_ = await a.claim(now, 30)  # ...and process A dies here
    assert await b.claim(now + 29, 30) == []  # its claim still holds
    again = await b.claim(now + 31, 30)
    assert [(c.cron_id, s) for c, s in again] == [(claimed.cron_id, slot)]
    assert again[0][0].next_run_at == hour(7, 11)  # the schedule did not move twice


async def test_disabled_and_ended_crons_are_not_claimed(stores):
    a, _ = stores
    await a.create(cron(next_run_at=hour(7, 10), enabled=False), limit=10)
    await a.create(cron(next_run_at=hour(7, 10), end_at=hour(7, 9)), limit=10)
    assert await a.claim(hour(7, 10) + 1, 30) == []


async def test_the_scheduler_fires_under_one_key_per_slot_and_drops_crons_of_deleted_threads(
    stores,
):
    a, _ = stores
    live = cron("* * * * * *", next_run_at=time.time() - 1)
    orphan = cron("* * * * * *", next_run_at=time.time() - 1, thread_id="t-gone")
    await a.create(live, limit=10)
    await a.create(orphan, limit=10)
    keys: list[str] = []

    async def fire(fired: CronRecord, key: str) -> RunRecord:
        if fired.thread_id == "t-gone":
            raise TurnError(404, "Thread t-gone not found.")
        keys.append(key)
        return RunRecord(
            f"run-{len(keys)}", "t-1", "me", "agent", "agent", "pending", "enqueue", {}, {}
        )

    async def delete_thread(owner: str, thread_id: str) -> None:
        raise AssertionError("thread crons keep their thread")

    scheduler = CronScheduler(a, fire, delete_thread, poll_s=1, claim_s=30)
    assert await scheduler.tick() == 2
    assert keys == [
        f"cron:{live.cron_id}:{datetime.fromtimestamp(live.next_run_at, UTC).isoformat()}"
    ]
    assert await a.get(orphan.cron_id, "me") is None
    assert await a.get(live.cron_id, "me") is not None


def test_schedules_are_read_in_their_time_zone():
    paris_9am = next_slot("0 9 * * *", "Europe/Paris", hour(7, 0))
    assert datetime.fromtimestamp(paris_9am, UTC) == datetime(2026, 12, 7, 8, tzinfo=UTC)
    assert next_slot("0 9 * * *", None, hour(7, 0)) == hour(7, 9)
