"""The run manager in-process on real SQLite files with the offline engine (no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from graph.context import Context
from graph.settings import Settings
from server.runs.engine import RunManager, RunStore
from server.runs.runner import AgentRunner

THREADS = 5
RUNS_PER_THREAD = 3


async def test_per_thread_locks_are_freed_once_every_run_of_the_thread_is_done(tmp_path: Path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    runner = await AgentRunner.open(settings)
    store = await RunStore.open(
        settings.runs_db, busy_timeout_ms=5000, synchronous=settings.sqlite_synchronous
    )
    runs = RunManager(runner, store)
    context = Context(user_id="me", role="write")
    try:
        first = [
            await runs.create(
                context=context,
                thread_id=None,
                kind="chat",
                payload={"message": f"Create a task called Item {n}"},
                idempotency_key=f"item-{n}",
            )
            for n in range(THREADS)
        ]
        more = [
            await runs.create(
                context=context,
                thread_id=run.thread_id,
                kind="chat",
                payload={"message": "list my tasks"},
            )
            for run in first
            for _ in range(RUNS_PER_THREAD - 1)
        ]
        finished = await asyncio.gather(*(runs.wait(run.run_id) for run in [*first, *more]))
        assert [run.status for run in finished] == ["success"] * THREADS * RUNS_PER_THREAD
        for run in first:
            assert len(await store.for_thread(run.thread_id)) == RUNS_PER_THREAD
        # Nothing is left behind for threads that have no runs.
        assert runs._thread_locks == {} and runs._thread_runs == {}
        assert len(runs._admission) == 0 and len(runs._idempotency) == 0
    finally:
        await runs.shutdown(0)
        await store.close()
        await runner.close()
