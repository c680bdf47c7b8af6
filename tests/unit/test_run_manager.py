"""The run manager in-process on real SQLite files with the offline engine (no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from graph.context import Context
from graph.settings import Settings
from server.runs.engine import RunManager

THREADS = 5
RUNS_PER_THREAD = 3


async def test_queued_runs_of_many_threads_all_finish_and_nothing_stays_live(tmp_path: Path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    runs = await RunManager.open(settings)
    store = runs.store
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
            assert await runs.active_runs(run.thread_id) == []
        # Each thread's runs ran one after another, in the order they were admitted.
        for run in first:
            ran = sorted(await store.for_thread(run.thread_id), key=lambda r: r.created_at)
            assert [r.status for r in ran] == ["success"] * RUNS_PER_THREAD
        assert await store.pending_count() == 0
    finally:
        await runs.close()
