"""Removing threads: deleting one, pruning its history, and the TTL sweeper that does either.

`DELETE /threads/{id}`, `POST /threads/prune` and the sweeper all remove a thread through
`delete_thread`, so an expired thread goes exactly as a deleted one does: its runs
(cancelled first if live) and their event logs, its checkpoints, its message archive and
its index entry.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from server.runs.engine import RunManager
from server.runs.threads import ThreadInfo
from tools.storage_errors import log_failure

log = logging.getLogger(__name__)

# Threads one sweep removes at most; the rest go at the next sweep.
SWEEP_LIMIT = 1000


async def keep_latest(runs: RunManager, thread_id: str) -> bool:
    """Drop the thread's history but its latest state; False (nothing done) while it runs.

    A live run is writing the chain the prune would cut: the thread is left for later.
    """
    if await runs.active_runs(thread_id):
        return False
    await runs.runner.saver.aprune([thread_id], strategy="keep_latest")
    return True


async def sweep_expired(runs: RunManager, now: datetime | None = None) -> int:
    """Apply each expired thread's TTL strategy; return how many threads were swept.

    `delete` deletes the thread; `keep_latest` prunes its history and starts its TTL over,
    so the thread keeps only its latest state as it lives on.
    """
    moment = now or datetime.now(UTC)
    swept = 0
    for info in await runs.runner.threads.expired(moment, SWEEP_LIMIT):
        try:
            swept += await _expire(runs, info, moment)
        except Exception as exc:
            # One thread that cannot be swept must not hold up every thread after it.
            log_failure(log, f"sweeping thread {info.thread_id}", exc)
    return swept


async def _expire(runs: RunManager, info: ThreadInfo, now: datetime) -> bool:
    if info.ttl_strategy == "keep_latest":
        if info.status == "interrupted":
            # Waiting for an answer (maybe to several tool calls at once): its pending step is
            # left whole; the thread is pruned at a sweep after it is answered.
            return False
        if not await keep_latest(runs, info.thread_id):
            return False
        await runs.runner.threads.set_ttl(
            info.thread_id, "keep_latest", info.ttl_minutes or 0.0, now=now
        )
        return True
    await runs.delete_thread(info.thread_id)
    return True


async def watch_ttls(runs: RunManager, interval_s: float) -> None:
    """Sweep expired threads every `interval_s` seconds until cancelled."""
    while True:
        try:
            async with runs.store.one_replica("thread-ttl") as mine:
                swept = await sweep_expired(runs) if mine else 0
            if swept:
                log.info("swept %d thread(s) whose TTL ran out", swept)
        except Exception as exc:
            log_failure(log, "thread TTL sweep", exc)
        await asyncio.sleep(interval_s)
