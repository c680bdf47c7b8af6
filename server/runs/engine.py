"""The run engine: every turn, from every surface, is admitted, leased, executed and logged here.

The HTTP routes, `/chat`, the local CLI and MCP all create runs through `RunManager.create`
and read them through `events`. A run is admitted in one transaction (runs.sqlite), leased to
the process that executes it, and its events are written to the log *before* any client sees
them, with a per-run monotonic sequence number. A client that comes back with `Last-Event-ID`
gets the events after that id from the log, then live ones, with no gap and no duplicate —
from whichever process it asks, and also after the executing process was killed: its lease
runs out, another process on the same data dir claims the run and resumes it from its last
checkpoint as a new attempt, continuing the sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from graph import metrics
from graph.context import Context
from graph.services import Services
from graph.settings import Settings
from server.observability import logs
from server.runs.assistants import AssistantStore
from server.runs.channel import RunChannel
from server.runs.graphs import TASK_AGENT, system_assistant_id
from server.runs.leases import Leases
from server.runs.projections import projection_for
from server.runs.retention import delete_run_checkpoints
from server.runs.runner import (
    AgentRunner,
    PreparedRun,
    RunOptions,
    RunOutcome,
    TurnError,
    TurnResult,
    title_of,
)
from server.runs.store import (
    FINISHED,
    CancelAction,
    KeyBinding,
    KeyOrphaned,
    KeyReused,
    MultitaskStrategy,
    QueueFull,
    RunEvent,
    RunKind,
    RunRecord,
    RunStatus,
    RunStore,
    ThreadBusy,
)
from server.runs.threads import ThreadInfo, ThreadLimitReached
from server.security.ratelimit import RateLimiter
from tools.database import acquire_pool, release_pool
from tools.storage_errors import EVENT_ERROR as STORAGE_ERROR
from tools.storage_errors import classify, log_failure

T = TypeVar("T")
log = logging.getLogger(__name__)

# How many times (a second apart) a run's final status is retried while storage is unavailable.
STORAGE_RETRIES = 60
# How often a client of a run executing in another process reads its log.
FOLLOW_POLL_S = 0.05
# How often a follower reads another replica's log anyway while notifications arrive.
LISTENING_POLL_S = 1.0
# Attempts a run gets when the database goes away under it, before it ends as an error.
CUT_OFF_ATTEMPTS = 5
# Runs stop here once leases have gone unrenewed for this share of the lease time: before
# any other process may take them over, so two attempts of a run never write side by side.
FENCE_SHARE = 0.8


class _CutOff(Exception):
    """The database went away under a run: it resumes once the database is back."""


class RunManager:
    """Admits, leases, executes, streams, cancels and takes over runs."""

    def __init__(
        self,
        runner: AgentRunner,
        store: RunStore,
        limiter: RateLimiter | None = None,
        *,
        assistants: AssistantStore,
        serves_others: bool = True,
    ) -> None:
        self.runner = runner
        self.store = store
        self.assistants = assistants
        self.limiter = limiter
        self.leases = Leases(store, runner.services.settings, serves_others=serves_others)
        store.wakeups.on_runs(self.leases.wake)
        self.identity = self.leases.identity
        # Runs executing in this process, by id; the runs table says which are live anywhere.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # When each run executing here was leased (monotonic), for the fence.
        self._claimed_at: dict[str, float] = {}
        self._channels: dict[str, RunChannel] = {}
        self._cancel_actions: dict[str, str] = {}
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []

    @classmethod
    async def open(
        cls,
        settings: Settings,
        limiter: RateLimiter | None = None,
        services: Services | None = None,
        *,
        start: bool = True,
        serves_others: bool = True,
    ) -> RunManager:
        """Open the graph, the run store and start claiming: what every surface runs on."""
        if settings.postgres_url:
            # The first use sizes the process's one pool; the saver and every store share it.
            await acquire_pool(settings.postgres_url, max_size=settings.pg_pool_size)
        try:
            return await cls._open(settings, limiter, services, start, serves_others)
        except BaseException:
            if settings.postgres_url:
                await release_pool(settings.postgres_url)
            raise

    @classmethod
    async def _open(
        cls,
        settings: Settings,
        limiter: RateLimiter | None,
        services: Services | None,
        start: bool,
        serves_others: bool,
    ) -> RunManager:
        runner = await AgentRunner.open(settings, services)
        store = await RunStore.open(
            settings.runs_db,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
            database_url=settings.postgres_url,
            listen=settings.pg_listen,
        )
        assistants = await AssistantStore.open(
            settings.runs_db,
            runner.graphs,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
            database_url=settings.postgres_url,
        )
        runs = cls(runner, store, limiter, assistants=assistants, serves_others=serves_others)
        if start:
            await runs.start()
        return runs

    async def close(self) -> None:
        """Stop (leaving unfinished runs to whoever claims them next) and close everything."""
        await self.shutdown(self.settings.shutdown_grace_s)
        await self.assistants.close()
        await self.store.close()
        await self.runner.close()
        if self.settings.postgres_url:
            await release_pool(self.settings.postgres_url)

    @property
    def settings(self) -> Settings:
        """The process's settings (limits, time-outs, leases, retention)."""
        return self.runner.services.settings

    # --- creating ------------------------------------------------------------------------

    async def create(
        self,
        *,
        context: Context,
        thread_id: str | None,
        kind: RunKind,
        payload: dict[str, Any],
        strategy: MultitaskStrategy = "enqueue",
        metadata: dict[str, Any] | None = None,
        assistant_id: str = TASK_AGENT,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Admit a run; it starts at once, or when the thread's earlier runs are done.

        With an `idempotency_key`, a repeat of the same request returns the original run
        (nothing runs twice) and a different request under the same key is refused (422).
        """
        key = None
        if idempotency_key is not None:
            fingerprint = hashlib.sha256(
                json.dumps([kind, thread_id, payload, strategy], sort_keys=True).encode()
            ).hexdigest()
            key = KeyBinding(context.user_id, idempotency_key, fingerprint)
        new_thread = thread_id is None
        graph_id = payload.get("graph_id") or TASK_AGENT
        if assistant_id == graph_id:
            assistant_id = system_assistant_id(graph_id)
        # Clients (agent-chat-ui's history, Studio) find a graph's threads by these.
        thread_metadata = {"graph_id": graph_id, "assistant_id": assistant_id}
        if thread_id is not None:
            info = await self.runner.check_access(thread_id, context.user_id)
            if not info.metadata.get("graph_id"):
                await self.runner.threads.update_metadata(
                    thread_id, thread_metadata, max_bytes=self.settings.max_metadata_bytes
                )
            if not await self.store.live(thread_id):
                # With nothing ahead of it the request can be checked now, so a bad one is a
                # 4xx and never a half-created run; a queued one is checked when it starts.
                await self._prepare(context, thread_id, payload)
        else:
            thread_id = (await self._prepare(context, None, payload)).thread_id
        run = RunRecord(
            run_id=str(uuid.uuid4()),
            thread_id=thread_id,
            owner=context.user_id,
            assistant_id=assistant_id,
            kind=kind,
            status="pending",
            multitask_strategy=strategy,
            payload=payload,
            metadata=metadata or {},
            identity={
                "role": context.role,
                "model_tier": context.model_tier,
                "request_id": context.request_id,
            },
        )
        if new_thread:
            await self.create_thread(context, thread_id, thread_metadata, title=_title(payload))
        admitted_at = time.monotonic()
        try:
            admission = await self.store.admit(
                run,
                key=key,
                key_ttl=timedelta(seconds=self.settings.idempotency_ttl_s),
                max_pending=self.settings.max_queued_runs_per_user,
                lease_owner=self.identity,
                lease_s=self.settings.run_lease_s,
            )
        except (ThreadBusy, QueueFull, KeyReused, KeyOrphaned) as exc:
            if new_thread:
                await self.runner.threads.delete(thread_id)
            raise _refusal(exc, thread_id, self.settings.max_queued_runs_per_user) from None
        if not admission.new:
            if new_thread:
                await self.runner.threads.delete(thread_id)
            return admission.run
        for run_id in admission.stopping:
            # A running run of this process stops now; another process's at its next renewal.
            await self._stop_local(run_id, admission.run.multitask_strategy)
        if run.status == "running":
            self._start(run, next_seq=1, claimed_at=admitted_at)
        else:
            self.leases.queued_here.add(run.run_id)
            metrics.RUNS_QUEUED.set(await self.store.pending_count())
        return run

    async def turn(
        self,
        *,
        context: Context,
        message: str | None = None,
        thread_id: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Run one chat turn and yield its events: what the local CLI and MCP call.

        A new message, an answer to the pending approval (`resume`), or neither to finish a
        cut-off run. The turn is a run like any other (event log, queueing, time-out,
        takeover); a refused request or a failed run raises TurnError.
        """
        if resume is not None:
            payload: dict[str, Any] = {"resume": resume}
        elif message is not None:
            payload = {"message": message}
        else:
            payload = {"continue": True}
        run = await self.create(context=context, thread_id=thread_id, kind="chat", payload=payload)
        async for event in self.events(run.run_id):
            data = json.loads(event.data)
            if event.event == "error":
                status = 409 if data.get("error") == "BadRequest" else 500
                raise TurnError(status, str(data.get("message", "The run failed.")))
            yield event.event, data

    async def run_turn(
        self,
        *,
        context: Context,
        message: str | None = None,
        thread_id: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> TurnResult:
        """Run one chat turn to its end (or its interrupt) and return the result."""
        done: dict[str, Any] | None = None
        async for kind, data in self.turn(
            context=context, message=message, thread_id=thread_id, resume=resume
        ):
            if kind == "done":
                done = data
        if done is None:
            raise TurnError(409, "The turn was cancelled before it answered.")
        return TurnResult(**done)

    async def create_thread(
        self,
        context: Context,
        thread_id: str,
        metadata: dict[str, Any] | None = None,
        *,
        title: str = "",
    ) -> tuple[ThreadInfo, bool]:
        """Create a thread for the user, or find the one with the id; say whether it is new.

        Refused with 429, creating nothing, when the user has the most threads allowed.
        """
        limit = self.settings.max_threads_per_user
        try:
            return await self.runner.threads.create(
                thread_id, context.user_id, metadata, title=title, limit=limit
            )
        except ThreadLimitReached:
            raise TurnError(
                429,
                f"You already have {limit} threads, the most allowed per user; delete threads"
                " you no longer need before creating more.",
            ) from None

    async def delete_thread(self, thread_id: str, *, keep_runs: bool = False) -> None:
        """Delete a thread: its runs (cancelled if live), checkpoints, archive and index entry.

        `keep_runs` keeps its finished runs and their event logs (a thread-less run's thread
        goes when the run ends, but its client may still read the run's result).
        """
        if not keep_runs:
            for run_id in await self.active_runs(thread_id):
                await self.cancel(run_id)
            await self.store.delete_thread(thread_id)
        await self.runner.saver.adelete_thread(thread_id)
        await self.runner.services.tasks.delete_archive(thread_id)
        await self.runner.threads.delete(thread_id)

    async def active_runs(self, thread_id: str) -> list[str]:
        """Return the ids of the thread's pending and running runs, in any process."""
        return await self.store.live(thread_id)

    async def _prepare(
        self, context: Context, thread_id: str | None, payload: dict[str, Any]
    ) -> PreparedRun:
        if payload.keys() & {"message", "resume", "continue"}:
            return await self.runner.prepare(
                context=context,
                thread_id=thread_id,
                message=payload.get("message"),
                resume=payload.get("resume"),
            )
        command = payload.get("command") or {}
        return await self.runner.prepare(
            context=context,
            thread_id=thread_id,
            resume=command.get("resume"),
            graph_input=payload.get("input"),
            command=command,
            strict_pending=False,
            options=RunOptions.of(payload),
            continue_thread=payload.get("input") is None and not command,
        )

    # --- leases --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming runs (those left by dead processes first) and renewing leases."""
        await self.leases.release_dead_neighbours()
        self.leases.wake()
        self._loops = [
            asyncio.create_task(self._claim_loop()),
            asyncio.create_task(self._renew_loop()),
            asyncio.create_task(self._fence_loop()),
        ]

    async def _claim_loop(self) -> None:
        async for claimed in self.leases.claimed():
            # A failure here must not end the loop: nothing would be claimed again.
            try:
                await self._begin(claimed)
            except Exception as exc:
                log_failure(log, "starting claimed runs", exc)

    async def _begin(self, claimed: list[RunRecord]) -> None:
        claimed_at = self.leases.claim_sent
        for run in claimed:
            if run.attempt > 1:
                log.warning("resuming run %s (attempt %d)", run.run_id, run.attempt)
            try:
                last_seq = await self._storage_retried(partial(self.store.last_seq, run.run_id))
            except Exception:
                # Leased here but not started, its lease would be renewed forever: hand it
                # back so that the next claim pass (here or elsewhere) takes it over.
                log.exception("could not start run %s; handing its lease back", run.run_id)
                await self.store.release_run(run.run_id, self.identity)
                continue
            self._start(run, next_seq=last_seq + 1, claimed_at=claimed_at)
        if claimed:
            metrics.RUNS_QUEUED.set(await self.store.pending_count())

    async def _storage_retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, retried through a storage outage (a lock, a full disk) for a few seconds."""
        for attempt in range(STORAGE_RETRIES):
            try:
                return await call()
            except Exception as exc:
                if classify(exc) is None or attempt == STORAGE_RETRIES - 1:
                    raise
                await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    async def _renew_loop(self) -> None:
        async for held in self.leases.renewals():
            for run_id, task in list(self._tasks.items()):
                if run_id not in held:
                    # Another process took it over (this one stalled past the lease): stop
                    # without recording anything; the run is theirs now.
                    log.warning("lost the lease of run %s; stopping it here", run_id)
                    self._cancel_actions[run_id] = "lost"
                    task.cancel()
                elif held[run_id] and run_id not in self._cancel_actions:
                    self._cancel_actions[run_id] = str(held[run_id])
                    task.cancel()

    async def _fence_loop(self) -> None:
        lease_s = self.settings.run_lease_s
        while True:
            await asyncio.sleep(lease_s / 10)
            stopping = [
                run_id
                for run_id, claimed_at in self._claimed_at.items()
                if run_id not in self._cancel_actions
                and self.leases.unconfirmed_for(claimed_at) >= lease_s * FENCE_SHARE
            ]
            if stopping:
                log.warning(
                    "leases unrenewed for %.1f s (the database is unreachable): stopping %d"
                    " run(s) here; they resume from their last checkpoint once it is back",
                    self.leases.unconfirmed_for(0.0),
                    len(stopping),
                )
            for run_id in stopping:
                self._cancel_actions[run_id] = "cut off"
                self._tasks[run_id].cancel()

    # --- executing -----------------------------------------------------------------------

    def _start(self, run: RunRecord, *, next_seq: int, claimed_at: float) -> None:
        channel = RunChannel(
            self.store, run.run_id, next_seq, kind=run.kind, redactor=self.runner.services.redactor
        )
        self._channels[run.run_id] = channel
        self._claimed_at[run.run_id] = claimed_at
        self._tasks[run.run_id] = asyncio.create_task(self._drive(run, channel))

    async def _drive(self, run: RunRecord, channel: RunChannel) -> None:
        context = run.context()
        logs.bind(
            run_id=run.run_id,
            thread_id=run.thread_id,
            user=run.owner,
            request_id=context.request_id,
        )
        ending: tuple[RunStatus, str | None] | None = None
        try:
            with metrics.RUNS_RUNNING.track_inprogress():
                ending = await self._execute(run, context, channel)
        except _CutOff:
            # Marked, so that the fence does not cancel the hand-back below. Its followers
            # read the log from here on, where the next attempt writes.
            self._cancel_actions.setdefault(run.run_id, "cut off")
            await channel.abandon()
            await self._hand_back(run.run_id)
        except asyncio.CancelledError:
            # Kept until the run's task ends: a lease renewal seeing the cancel request then
            # knows it is in hand and does not cancel the clean-up below a second time.
            action = self._cancel_actions.get(run.run_id, "interrupt")
            if action == "lost":
                # No longer ours: the process that took the run over writes its log now.
                await channel.abandon()
                raise
            if action == "cut off":
                await channel.abandon()
                await self._hand_back(run.run_id)
                raise
            if self._stopping:
                # Shutting down: the run resumes wherever it is claimed next.
                await channel.close()
                raise
            # Cancelled while running: the thread keeps its last checkpoint. The run ends as
            # interrupted whatever its clean-up meets: a run left "running" under this
            # process's lease would be renewed, and so stuck, for as long as it lives.
            ending = ("interrupted", None)
            try:
                if action == "rollback":
                    await delete_run_checkpoints(self.runner.saver, run.thread_id, run.run_id)
                await self.runner.settle(run.thread_id)
            except Exception as exc:
                log_failure(log, f"cleaning up cancelled run {run.run_id}", exc)
            channel.publish("error", {"error": "Cancelled", "message": f"Run {action}ed."})
        finally:
            if ending is not None:
                # The log is complete before the run is recorded finished: a client in another
                # process stops reading once it sees the status.
                await channel.close()
                try:
                    await self._record_end(run.run_id, *ending)
                except Exception:
                    # Not recorded: hand the run back, so that a claim pass finishes it.
                    await self.store.release_run(run.run_id, self.identity)
                    raise
                if run.payload.get("on_completion") == "delete":
                    await self.delete_thread(run.thread_id, keep_runs=True)
                if await self.store.has_pending(run.thread_id):
                    # Its next queued run starts now rather than at the next poll; a claim
                    # pass after every run would queue every other write behind it.
                    self.leases.wake()
            if not self._stopping:
                metrics.RUN_DURATION.labels(run.kind).observe(
                    time.monotonic() - channel.accepted_at
                )
            if self.limiter is not None and self.limiter.tpm:
                try:
                    used = await self.runner.services.tasks.run_tokens(run.run_id)
                    await self.limiter.spend_tokens(run.owner, used)
                except Exception as exc:
                    # The run is over and recorded; its bookkeeping below must still happen.
                    log_failure(log, f"charging the tokens of run {run.run_id}", exc)
            self._tasks.pop(run.run_id, None)
            self._claimed_at.pop(run.run_id, None)
            self._channels.pop(run.run_id, None)
            self._cancel_actions.pop(run.run_id, None)

    async def _execute(
        self, run: RunRecord, context: Context, channel: RunChannel
    ) -> tuple[RunStatus, str | None]:
        projection = projection_for(run)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.turn_timeout_s):
                prepared = await self._prepared(run, context)
                for event in projection.start():
                    channel.publish(*event)
                outcome = RunOutcome()
                async for mode, payload in self.runner.execute(
                    prepared, context, run.run_id, outcome, projection.modes
                ):
                    for event in projection.events(mode, payload):
                        channel.publish(*event)
                latency_ms = (time.perf_counter() - started) * 1000
                for event in projection.finish(outcome, latency_ms):
                    channel.publish(*event)
        except TimeoutError:
            metrics.RUNAWAY_STOPS.labels("turn_timeout").inc()
            answer = await self.runner.stop_for_time(run.thread_id, self.settings.turn_timeout_s)
            values = await self.runner.values(run.thread_id)
            for event in projection.stopped(answer, values, self.settings.turn_timeout_s * 1000):
                channel.publish(*event)
            return "timeout", "turn timeout"
        except TurnError as exc:
            channel.publish("error", {"error": "BadRequest", "message": exc.message})
            return "error", exc.message
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            storage = classify(exc)
            if storage is not None and storage.reason == "down" and run.attempt < CUT_OFF_ATTEMPTS:
                # Like a crash of this process: the run resumes from its last checkpoint
                # (here or on another replica), its tool results stored exactly once.
                log.warning(
                    "run %s cut off from the database (%s); it resumes from its last"
                    " checkpoint once the database is back",
                    run.run_id,
                    exc,
                )
                raise _CutOff from exc
            if storage is None:
                log.exception("run %s failed", run.run_id)
                error = {"error": type(exc).__name__, "message": "The run failed; see server log."}
            else:
                # Locked or full storage: the thread resumes from its last checkpoint later.
                log.warning("run %s stopped, storage %s: %s", run.run_id, storage.reason, exc)
                error = {
                    "error": STORAGE_ERROR,
                    "reason": storage.reason,
                    "message": storage.message,
                }
            channel.publish("error", error)
            return "error", error["error"]
        return "success", None

    async def _hand_back(self, run_id: str) -> None:
        """Give up the run's lease as soon as the database takes the write.

        Until then renewals fail and the lease runs out by itself; once the database is back
        this process would renew it with its other runs, and nobody would resume it.
        """
        while True:
            try:
                await self.store.release_run(run_id, self.identity)
                return
            except Exception as exc:
                if classify(exc) is None:
                    raise
            await asyncio.sleep(1.0)

    async def _record_end(self, run_id: str, status: RunStatus, error: str | None) -> None:
        """Record how the run ended, waiting out a storage outage (a lock, a full disk)."""
        await self._storage_retried(
            lambda: self.store.set_status(run_id, status, error=error, lease_owner=self.identity)
        )

    async def _prepared(self, run: RunRecord, context: Context) -> PreparedRun:
        if run.attempt > 1 and await self.runner.reached_graph(
            run.thread_id, run.run_id, run.payload
        ):
            info = await self.runner.threads.get(run.thread_id)
            options = RunOptions.of(run.payload)
            # The run's own checkpoint is behind it now: it continues from the latest.
            options.checkpoint_id = None
            return PreparedRun(run.thread_id, info, None, "", continue_run=True, options=options)
        if run.attempt > 1:
            # The attempt that died may have marked the thread busy before its input reached
            # a checkpoint: the thread's record is rebuilt from the checkpoint first.
            await self.runner.settle(run.thread_id)
        return await self._prepare(context, run.thread_id, run.payload)

    # --- watching ------------------------------------------------------------------------

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """Yield the run's events after sequence `after`: from the log, then live.

        A run executing in this process is followed through its channel; one executing in
        another process (or waiting to be claimed) through its log, until it is finished.
        """
        last = after
        while True:
            # Take the live channel before reading the log: whatever it delivers later has a
            # higher sequence number than anything the log read can miss. Likewise the
            # wake-up token: a replica's notification after this read still wakes us.
            token = self.store.wakeups.events_token()
            channel = self._channels.get(run_id)
            status = None if channel else await self.store.status(run_id)
            for event in await self.store.events_after(run_id, last):
                yield event
                last = event.seq
            if channel is not None:
                async for event in _follow(channel, last):
                    yield event
                    last = event.seq
                if not channel.abandoned:
                    return
                continue  # taken over by another process: read its log from here on
            if status is None or status in FINISHED:
                return
            await self.store.wakeups.wait(token, FOLLOW_POLL_S, LISTENING_POLL_S)

    async def wait(self, run_id: str) -> RunRecord:
        """Wait for the run to finish (in whichever process runs it) and return it."""
        while True:
            task = self._tasks.get(run_id)
            if task is not None:
                await asyncio.wait({task})
            run = await self.store.get(run_id)
            assert run is not None
            if run.status in FINISHED:
                return run
            await asyncio.sleep(FOLLOW_POLL_S * 4)

    async def is_live(self, run_id: str) -> bool:
        """Return whether the run is pending or running, in any process."""
        return await self.store.status(run_id) in ("pending", "running")

    async def cancel(self, run_id: str, action: CancelAction = "interrupt") -> bool:
        """Stop a pending or running run; `rollback` also drops what it wrote to the thread.

        Returns once it has stopped (a run in another process stops at that process's next
        lease renewal); False when it was not live.
        """
        before = await self.store.request_cancel(run_id, action)
        if before not in ("pending", "running"):
            return False
        if before == "pending":
            self.leases.queued_here.discard(run_id)
            return True
        if not await self._stop_local(run_id, action):
            await self.wait(run_id)
        return True

    async def _stop_local(self, run_id: str, action: str) -> bool:
        task = self._tasks.get(run_id)
        if task is None:
            return False
        if run_id not in self._cancel_actions:  # a second cancel would cut its clean-up short
            self._cancel_actions[run_id] = action
            task.cancel()
        await asyncio.wait({task})
        return True

    # --- life cycle ----------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Claim the runs left by processes that are gone now; return their ids."""
        await self.leases.release_dead_neighbours()
        claimed = await self.leases.claim(limit=10_000)
        await self._begin(claimed)
        return [run.run_id for run in claimed]

    async def shutdown(self, grace_s: float) -> None:
        """Give in-flight runs `grace_s` to finish, then stop them and hand their leases back."""
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops = []
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            self._stopping = True
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        self._stopping = True
        await self.leases.release()


async def _follow(channel: RunChannel, after: int) -> AsyncIterator[RunEvent]:
    last = after
    while True:
        for event in channel.delivered_after(last):
            yield event
            last = event.seq
        if channel.done:
            if channel.failure is not None:
                data = json.dumps({"error": "EventLogError", "message": channel.failure})
                yield RunEvent(last + 1, "error", data)
            return
        await channel.wait_past(last)


def _refusal(exc: Exception, thread_id: str, limit: int) -> TurnError:
    if isinstance(exc, ThreadBusy):
        return TurnError(
            409,
            f"Thread {thread_id} already has a run in progress ({exc.run_id}); "
            "multitask_strategy=reject refuses a second one. Wait for it, join it, "
            "or use enqueue, interrupt or rollback.",
        )
    if isinstance(exc, QueueFull):
        return TurnError(
            429,
            f"You already have {limit} runs waiting to start, the most allowed per"
            " user; wait for them or cancel some before queueing more.",
        )
    if isinstance(exc, KeyReused):
        return TurnError(
            422,
            "This Idempotency-Key was already used with a different request;"
            " use a new key for a new request.",
        )
    return TurnError(
        410,
        "The run this Idempotency-Key created has been deleted; send the"
        " request with a new key to run it again.",
    )


def _title(payload: dict[str, Any]) -> str:
    message = payload.get("message")
    if isinstance(message, str):
        return message[:80]
    return title_of(payload.get("input"))
