"""A thread's event stream for the thread-centric protocol, read from the durable run log.

Every event of every run created through the thread's commands (kind `thread`) is already in
`run_events`, in protocol shape (server/runs/thread_projection.py). This module orders those
runs, gives each event its thread-level cursor and envelope, and follows the thread: the
events of finished runs from the log, the running run's as they are logged, then any run
that starts later, for as long as the client stays.

The cursor (`seq`, what a client sends back as `since`): a thread's runs execute one at a
time, oldest first, so the n-th run of the thread (in creation order, counting only its
`thread` runs) owns the block `n * 2**20 ... n * 2**20 + 2**20 - 1`, and its event with run
sequence `s` has `seq = n * 2**20 + s`. Cursors therefore grow monotonically across runs, are
the same on every connection, in every process and after a restart (they are computed from
the log, which is on disk), and `since` skips whole runs without reading them. `event_id`
is `<run_id>:<s>`, stable for client-side de-duplication.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from server.runs.engine import RunManager
from server.runs.store import RunEvent, RunKind, RunRecord

BLOCK = 1 << 20
KIND: RunKind = "thread"
CHANNELS = frozenset(
    {
        "values",
        "updates",
        "checkpoints",
        "messages",
        "tools",
        "custom",
        "lifecycle",
        "input",
        "tasks",
    }
)
# How often a following client looks for the thread's next run: from 0.1 s after a run, up
# to 0.5 s while the thread is quiet; it reads the newest few runs, or all after a burst.
NEXT_RUN_POLL_S = (0.1, 0.5)
RECENT_RUNS = 20
MAX_RUNS = 100_000


def supported_channel(channel: Any) -> bool:
    """Whether `channel` is a protocol channel: the nine names or `custom:<name>`."""
    if not isinstance(channel, str):
        return False
    return channel in CHANNELS or (channel.startswith("custom:") and len(channel) > 7)


@dataclass(frozen=True)
class StreamFilter:
    """Which events a connection asked for: channels, namespace prefixes and depth."""

    channels: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None = None
    depth: int | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the envelope `event` passes this filter."""
        method = event["method"]
        channel = "input" if method == "input.requested" else method
        params = event["params"]
        if channel == "custom":
            data = params.get("data")
            name = data.get("name") if isinstance(data, dict) else None
            if "custom" not in self.channels and f"custom:{name}" not in self.channels:
                return False
        elif channel not in self.channels:
            return False
        if not self.namespaces:
            return True
        namespace = tuple(params.get("namespace") or ())
        return any(
            namespace[: len(prefix)] == prefix
            and (self.depth is None or len(namespace) - len(prefix) <= self.depth)
            for prefix in self.namespaces
        )


async def thread_runs(runs: RunManager, thread_id: str, kind: RunKind = KIND) -> list[RunRecord]:
    """The thread's runs of `kind` (by default its commands'), oldest (first executed) first."""
    newest_first = await runs.store.for_thread(thread_id, limit=MAX_RUNS)
    return [run for run in reversed(newest_first) if run.kind == kind]


async def head(runs: RunManager, thread_id: str) -> int:
    """The cursor of the thread's last logged event (0 before any)."""
    ordered = await thread_runs(runs, thread_id)
    for rank in range(len(ordered), 0, -1):
        last = await runs.store.last_seq(ordered[rank - 1].run_id)
        if last:
            return rank * BLOCK + last
    return 0


def envelope(rank: int, run: RunRecord, logged: RunEvent) -> dict[str, Any]:
    """The wire event for one logged event of the thread's `rank`-th run."""
    method, params = logged.event, json.loads(logged.data)
    if method == "error":
        # The engine's own end of a run (failure or cancellation) in protocol terms.
        cancelled = params.get("error") == "Cancelled"
        data: dict[str, Any] = {
            "event": "interrupted" if cancelled else "failed",
            "graph_name": str(run.payload.get("graph_id") or run.assistant_id),
        }
        if not cancelled:
            data["error"] = str(params.get("message", "The run failed."))
        method, params = "lifecycle", {"namespace": [], "timestamp": 0, "data": data}
    return {
        "type": "event",
        "event_id": f"{run.run_id}:{logged.seq}",
        "seq": rank * BLOCK + logged.seq,
        "method": method,
        "params": params,
    }


async def follow(runs: RunManager, thread_id: str, since: int = 0) -> AsyncIterator[dict[str, Any]]:
    """Yield the thread's events with `seq > since`: logged ones, live ones, later runs' ones.

    Ends only when the thread is deleted; otherwise the caller stops iterating when its client
    goes away.
    """
    async for rank, run, logged in follow_log(runs, thread_id, since, KIND):
        if logged is not None:
            yield envelope(rank, run, logged)


async def follow_log(
    runs: RunManager, thread_id: str, since: int, kind: RunKind
) -> AsyncIterator[tuple[int, RunRecord, RunEvent | None]]:
    """Yield `(rank, run, event)` for the thread's `kind` runs' events past cursor `since`.

    Each run's logged events come in order, then `(rank, run, None)` once its log is complete
    (the run finished). Ends only when the thread is deleted. Between runs it looks for the
    thread's next run, more slowly the longer the thread stays quiet.
    """
    every = list(reversed(await runs.store.for_thread(thread_id, limit=MAX_RUNS)))
    ordered = [run for run in every if run.kind == kind]
    known = {run.run_id for run in every}  # of every kind: a burst is told from quiet
    done, wait_s = 0, NEXT_RUN_POLL_S[0]
    # On PostgreSQL a run queued through another replica wakes this follower at once.
    token = runs.store.wakeups.runs_token()
    while True:
        while done < len(ordered):
            run, rank = ordered[done], done + 1
            done += 1
            if since >= (rank + 1) * BLOCK:
                continue
            async for logged in runs.events(run.run_id, max(0, since - rank * BLOCK)):
                yield rank, run, logged
            yield rank, run, None
            wait_s = NEXT_RUN_POLL_S[0]
        await runs.store.wakeups.wait_runs(token, wait_s)
        token = runs.store.wakeups.runs_token()
        wait_s = min(wait_s * 2, NEXT_RUN_POLL_S[1])
        if await runs.runner.threads.get(thread_id) is None:
            return  # the thread was deleted: nothing more will come
        recent = await runs.store.for_thread(thread_id, limit=RECENT_RUNS)
        if len(recent) == RECENT_RUNS and not known & {run.run_id for run in recent}:
            recent = await runs.store.for_thread(thread_id, limit=MAX_RUNS)  # a burst: all
        fresh = [run for run in reversed(recent) if run.run_id not in known]
        ordered += [run for run in fresh if run.kind == kind]
        known.update(run.run_id for run in fresh)
