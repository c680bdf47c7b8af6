"""Joining a thread's stream (`GET /threads/{id}/stream`): every agent run of the thread, live.

What langgraph dev serves as `client.threads.join_stream`: the events of the thread's runs as
their run streams send them (`metadata`, `values`, `updates`, ...), each run closed by
`metadata {"status": "run_done", "run_id": ...}`, for as long as the client stays. Without
`Last-Event-ID` a client gets what is logged from the moment it joins (as dev); with one, the
rest after that id, read from the durable run log, so it resumes across runs, processes and
restarts.

The SSE id is the thread cursor of server/runs/thread_stream.py over the thread's `agent` runs:
the n-th run owns `n * 2**20 ...`; its event with run sequence `s` is `n * 2**20 + s`, and its
`run_done` takes the block's last id, `n * 2**20 + 2**20 - 1`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection
from typing import Literal, get_args

from server.runs.engine import RunManager
from server.runs.store import FINISHED, RunEvent, RunKind
from server.runs.thread_stream import BLOCK, follow_log, thread_runs

KIND: RunKind = "agent"
ThreadStreamMode = Literal["run_modes", "lifecycle", "state_update"]
STREAM_MODES: tuple[str, ...] = get_args(ThreadStreamMode)


def run_done_seq(rank: int) -> int:
    """The id of the `rank`-th run's closing `run_done` event: its block's last."""
    return (rank + 1) * BLOCK - 1


def wanted(modes: Collection[str], event: RunEvent) -> bool:
    """Whether `event` passes the `stream_modes` filter, as langgraph dev decides it.

    `run_modes`: everything a run streams; `lifecycle`: a run's start (`metadata` with
    `run_id` and `attempt`) and end (`run_done`); `state_update`: thread state updates,
    which this server does not publish on the thread stream.
    """
    if "run_modes" in modes and event.event != "state_update":
        return True
    if "state_update" in modes and event.event == "state_update":
        return True
    if "lifecycle" in modes and event.event == "metadata":
        data = json.loads(event.data)
        if isinstance(data, dict) and (
            data.get("status") == "run_done" or ("run_id" in data and "attempt" in data)
        ):
            return True
    return False


async def now_cursor(runs: RunManager, thread_id: str) -> int:
    """The cursor of the thread's stream as it stands: joining here gets only what follows.

    Every run before the oldest unfinished one is over (runs execute one at a time, oldest
    first); the cursor sits after that run's logged events, or after every run if none is left.
    """
    ordered = await thread_runs(runs, thread_id, KIND)
    for rank, run in enumerate(ordered, start=1):
        if await runs.store.status(run.run_id) not in FINISHED:
            return rank * BLOCK + await runs.store.last_seq(run.run_id)
    return run_done_seq(len(ordered))


async def join(
    runs: RunManager, thread_id: str, since: int | None, modes: Collection[str]
) -> AsyncIterator[RunEvent]:
    """Yield the thread's run events past cursor `since` (None: from now), filtered by `modes`.

    Ends only when the thread is deleted; otherwise the caller stops when its client leaves.
    """
    cursor = await now_cursor(runs, thread_id) if since is None else since
    async for rank, run, logged in follow_log(runs, thread_id, cursor, KIND):
        if logged is None:
            if cursor >= run_done_seq(rank):
                continue
            data = json.dumps({"status": "run_done", "run_id": run.run_id})
            logged = RunEvent(run_done_seq(rank) - rank * BLOCK, "metadata", data)
        event = RunEvent(rank * BLOCK + logged.seq, logged.event, logged.data)
        if wanted(modes, event):
            yield event
