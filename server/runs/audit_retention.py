"""Audit retention: the background pass that deletes audit rows older than the retention.

With `TASKAGENT_AUDIT_RETENTION_DAYS` above 0, each pass moves the trail's horizon forward
and deletes the rows older than it, in short batches (`TaskStore.prune_audit`). On
PostgreSQL one replica at a time runs a pass; the database itself refuses to delete any
row younger than the horizon, whoever asks.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from server.runs.store import RunStore
from tools.storage_errors import log_failure
from tools.store import TaskStore

log = logging.getLogger(__name__)


async def prune_audit_trail(runs: RunStore, tasks: TaskStore, days: float) -> int:
    """Run one retention pass; return how many audit rows it removed.

    Nothing is removed when `days` is 0 (keep forever) or another replica holds the pass.
    """
    if days <= 0:
        return 0
    async with runs.one_replica("audit-retention") as mine:
        removed = await tasks.prune_audit(timedelta(days=days)) if mine else 0
    if removed:
        log.info("pruned %d audit row(s) older than %s day(s)", removed, days)
    return removed


async def watch_audit_retention(
    runs: RunStore, tasks: TaskStore, days: float, interval_s: float
) -> None:
    """Run a retention pass every `interval_s` seconds until cancelled."""
    while True:
        try:
            await prune_audit_trail(runs, tasks, days)
        except Exception as exc:
            log_failure(log, "audit retention sweep", exc)
        await asyncio.sleep(interval_s)
