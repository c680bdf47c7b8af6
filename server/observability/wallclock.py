"""Wall-clock probes: where a turn waits, not only where the CPU goes.

Switched on with `TASKAGENT_WALLCLOCK_PROBES=true` (the benchmark's profile run does); off,
nothing here runs. A CPU profile cannot see a turn that waits: for the event loop to get
round to it (loop lag), behind other statements in an aiosqlite connection's queue (each
connection is one thread working through one queue), or for a lock. These probes time each
of those waits and export them at `/metrics`:

- `taskagent_event_loop_lag_seconds`: how late a sampler that sleeps `LAG_INTERVAL_S` wakes up;
- `taskagent_sqlite_{queue_wait,execute,wakeup}_seconds{db}`: per statement hop, the time it
  waited in the connection's queue, ran in SQLite (commit and WAL write included), and waited
  for the event loop to resume the awaiting coroutine after the thread finished;
- `taskagent_sqlite_queue_depth{db}`: statements already queued when one more was sent;
- `taskagent_lock_wait_seconds{lock}`: time spent acquiring the saver's and the stores' locks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

import aiosqlite
from prometheus_client import Histogram

LAG_INTERVAL_S = 0.01
WAIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
DEPTH_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128)

EVENT_LOOP_LAG = Histogram(
    "taskagent_event_loop_lag_seconds",
    "How late a sampler sleeping 10 ms woke up: time the event loop was busy elsewhere.",
    buckets=WAIT_BUCKETS,
)
SQLITE_QUEUE_WAIT = Histogram(
    "taskagent_sqlite_queue_wait_seconds",
    "Time a statement waited in its aiosqlite connection's queue before its thread ran it.",
    ["db"],
    buckets=WAIT_BUCKETS,
)
SQLITE_EXECUTE = Histogram(
    "taskagent_sqlite_execute_seconds",
    "Time a statement ran in SQLite on its connection's thread (commit included).",
    ["db"],
    buckets=WAIT_BUCKETS,
)
SQLITE_WAKEUP = Histogram(
    "taskagent_sqlite_wakeup_seconds",
    "Time from a statement's end on its thread to the awaiting coroutine running again.",
    ["db"],
    buckets=WAIT_BUCKETS,
)
SQLITE_QUEUE_DEPTH = Histogram(
    "taskagent_sqlite_queue_depth",
    "Statements already waiting in the connection's queue when one more was sent.",
    ["db"],
    buckets=DEPTH_BUCKETS,
)
LOCK_WAIT = Histogram(
    "taskagent_lock_wait_seconds",
    "Time spent acquiring a lock that serialises database work.",
    ["lock"],
    buckets=WAIT_BUCKETS,
)


async def watch_loop_lag(interval_s: float = LAG_INTERVAL_S) -> None:
    """Sample the event loop's scheduling delay forever (cancel to stop)."""
    loop = asyncio.get_running_loop()
    while True:
        asleep = loop.time()
        await asyncio.sleep(interval_s)
        EVENT_LOOP_LAG.observe(max(0.0, loop.time() - asleep - interval_s))


def probe_connection(conn: object, db: str) -> None:
    """Time every hop `conn` makes to its thread: queue wait, execution, wake-up (SQLite)."""
    if not isinstance(conn, aiosqlite.Connection):
        return  # PostgreSQL: no thread queue to time
    # aiosqlite sends every call (connection and cursor methods alike) through
    # `Connection._execute`, which puts a function on the thread's queue: wrap it there.
    original: Callable[..., Any] = conn._execute
    queue = conn._tx
    queue_wait, execute = SQLITE_QUEUE_WAIT.labels(db), SQLITE_EXECUTE.labels(db)
    wakeup, depth = SQLITE_WAKEUP.labels(db), SQLITE_QUEUE_DEPTH.labels(db)

    async def timed_execute(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        depth.observe(queue.qsize())
        sent = time.perf_counter()
        marks = [0.0, 0.0]

        def run() -> Any:
            marks[0] = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                marks[1] = time.perf_counter()

        try:
            return await original(run)
        finally:
            if marks[1]:
                queue_wait.observe(marks[0] - sent)
                execute.observe(marks[1] - marks[0])
                wakeup.observe(time.perf_counter() - marks[1])

    conn._execute = timed_execute  # type: ignore[method-assign]


def probe_lock(lock: asyncio.Lock, name: str) -> None:
    """Record how long each acquisition of `lock` waits, reported as `name`."""
    # The lock object itself stays: copies of its owner (LangGraph copies the saver when it
    # compiles) share it, and a replacement would no longer exclude them.
    original = lock.acquire
    wait = LOCK_WAIT.labels(name)

    async def timed_acquire() -> Literal[True]:
        started = time.perf_counter()
        try:
            return await original()
        finally:
            wait.observe(time.perf_counter() - started)

    lock.acquire = timed_acquire  # type: ignore[method-assign]
