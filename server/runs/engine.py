"""Runs: background execution, one at a time per thread, with a durable, replayable event log.

Every event a run emits is written to SQLite *before* any client sees it, with a per-run
monotonic sequence number. A client that comes back with `Last-Event-ID` gets the events
after that id from the log, then live ones, with no gap and no duplicate — also after the
process was killed, because the log and the checkpoints are on disk and start-up resumes
every run the previous process left unfinished (as a new attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from pydantic_core import to_jsonable_python

from graph import metrics
from graph.context import TIER_NAMES, Context
from graph.redaction import Redactor
from graph.settings import Settings
from server.observability import logs
from server.runs.event_redaction import EventRedactor
from server.runs.keyed_locks import KeyedLocks
from server.runs.retention import delete_run_checkpoints
from server.runs.runner import (
    AgentRunner,
    PreparedRun,
    RunOutcome,
    TurnError,
    title_of,
    turn_messages,
)
from server.runs.storage_errors import EVENT_ERROR as STORAGE_ERROR
from server.runs.storage_errors import classify
from server.runs.threads import ThreadInfo, ThreadLimitReached
from server.security.ratelimit import RateLimiter
from tools.audit import summarize
from tools.sqlite import fetch_all, fetch_one, now_iso, open_sqlite

log = logging.getLogger(__name__)

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
RunKind = Literal["chat", "agent"]
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
FINISHED: tuple[RunStatus, ...] = ("success", "error", "timeout", "interrupted")
# How many times (a second apart) a run's final status is retried while storage is unavailable.
STORAGE_RETRIES = 60

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    multitask_strategy TEXT NOT NULL,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    identity TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_thread ON runs (thread_id, created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

# SQLite allows 32,766 bound values per statement; an event binds 4.
EVENTS_PER_STATEMENT = 500
RUN_COLUMNS = (
    "run_id, thread_id, owner, assistant_id, kind, status, multitask_strategy, payload, metadata,"
    " attempt, error, created_at, updated_at, identity"
)


@dataclass
class RunRecord:
    """One run as stored."""

    run_id: str
    thread_id: str
    owner: str
    assistant_id: str
    kind: RunKind
    status: RunStatus
    multitask_strategy: MultitaskStrategy
    payload: dict[str, Any]
    metadata: dict[str, Any]
    attempt: int = 1
    error: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    # Who the run acts for beyond its owner (role, tier, request id), so a run resumed after a
    # restart has exactly the rights of the request that created it.
    identity: dict[str, Any] = field(default_factory=dict)

    def context(self) -> Context:
        """The run's identity as a Context; unknown or missing roles get the least rights."""
        role = self.identity.get("role")
        tier = self.identity.get("model_tier")
        return Context(
            user_id=self.owner,
            role=role if role in ("read", "write", "admin") else "read",
            request_id=str(self.identity.get("request_id") or ""),
            model_tier=tier if tier in TIER_NAMES else None,
        )


@dataclass(frozen=True)
class KeyBinding:
    """An `Idempotency-Key` of an owner and the fingerprint of the request it came with."""

    owner: str
    key: str
    fingerprint: str


class QueueFull(Exception):
    """The owner already has as many pending runs as allowed; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"pending run limit {limit} reached")
        self.limit = limit


@dataclass(frozen=True)
class RunEvent:
    """One logged event: its sequence number (the SSE id), name and JSON data."""

    seq: int
    event: str
    data: str


def _record(row: Any) -> RunRecord:
    values = list(row)
    values[7] = json.loads(values[7])
    values[8] = json.loads(values[8])
    values[13] = json.loads(values[13])
    return RunRecord(*values)


class RunStore:
    """The runs table and the append-only event log."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        # Many runs share this connection; a transaction spans several awaits, so writes
        # take turns instead of landing inside another run's open transaction.
        self._write = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, busy_timeout_ms: int, synchronous: str) -> RunStore:
        """Open (and create) the run store at `path`."""
        conn = await open_sqlite(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        await conn.executescript(SCHEMA)
        columns = {row[1] for row in await fetch_all(conn, "PRAGMA table_info(runs)")}
        if "identity" not in columns:
            # A runs table from before identities were stored: its runs resume as read-only.
            await conn.execute("ALTER TABLE runs ADD COLUMN identity TEXT NOT NULL DEFAULT '{}'")
        return cls(conn)

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def insert(
        self, run: RunRecord, *, key: KeyBinding | None = None, max_pending: int | None = None
    ) -> None:
        """Store a new run, and the idempotency key that asked for it, in one transaction.

        With `max_pending`, raises QueueFull (storing nothing) when the run's owner already
        has that many pending runs; sqlite3.IntegrityError means the key is taken.
        """
        async with self._write:
            # IMMEDIATE: the count and the inserts see and leave one consistent state, even
            # against another process on the same file.
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                if max_pending is not None:
                    row = await fetch_one(
                        self._conn,
                        "SELECT COUNT(*) FROM runs WHERE owner = ? AND status = 'pending'",
                        (run.owner,),
                    )
                    if row is not None and row[0] >= max_pending:
                        raise QueueFull(max_pending)
                await self._insert(run)
                if key is not None:
                    await self._conn.execute(
                        "INSERT INTO idempotency (owner, key, fingerprint, run_id, created_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (key.owner, key.key, key.fingerprint, run.run_id, now_iso()),
                    )
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise

    async def _insert(self, run: RunRecord) -> None:
        await self._conn.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                run.thread_id,
                run.owner,
                run.assistant_id,
                run.kind,
                run.status,
                run.multitask_strategy,
                json.dumps(run.payload),
                json.dumps(run.metadata),
                run.attempt,
                run.error,
                run.created_at,
                run.updated_at,
                json.dumps(run.identity),
            ),
        )

    async def get(self, run_id: str) -> RunRecord | None:
        """Return the run, or None."""
        row = await fetch_one(
            self._conn, f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
        )
        return None if row is None else _record(row)

    async def for_thread(
        self, thread_id: str, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> list[RunRecord]:
        """Return the thread's runs, newest first."""
        where, params = "thread_id = ?", [thread_id]
        if status:
            where += " AND status = ?"
            params.append(status)
        return [
            _record(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {RUN_COLUMNS} FROM runs WHERE {where}"
                " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
        ]

    async def unfinished(self) -> list[RunRecord]:
        """Return the runs left pending or running, oldest first."""
        return [
            _record(row)
            for row in await fetch_all(
                self._conn,
                f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('pending', 'running')"
                " ORDER BY created_at, rowid",
            )
        ]

    async def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """Record a run's new status (and error or attempt number)."""
        async with self._write:
            await self._conn.execute(
                "UPDATE runs SET status = ?, error = COALESCE(?, error),"
                " attempt = COALESCE(?, attempt), updated_at = ? WHERE run_id = ?",
                (status, error, attempt, now_iso(), run_id),
            )
        # Only once it is recorded: a write that failed is retried and must count once.
        detail = {"run_id": run_id, "status": status} | ({"error": error} if error else {})
        log.info("run %s", status, extra=detail)
        if status in FINISHED:
            metrics.RUNS.labels(status).inc()

    async def delete(self, run_id: str) -> None:
        """Delete a run and its events."""
        async with self._write:
            await self._conn.execute("DELETE FROM run_events WHERE run_id = ?", (run_id,))
            await self._conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    async def delete_thread(self, thread_id: str) -> None:
        """Delete every run of a thread and their events."""
        async with self._write:
            await self._conn.execute(
                "DELETE FROM run_events WHERE run_id IN"
                " (SELECT run_id FROM runs WHERE thread_id = ?)",
                (thread_id,),
            )
            await self._conn.execute("DELETE FROM runs WHERE thread_id = ?", (thread_id,))

    async def append(self, run_id: str, events: list[RunEvent]) -> None:
        """Append events in one transaction (durable before anyone sees them)."""
        rows = [(run_id, e.seq, e.event, e.data) for e in events]
        async with self._write:
            if len(rows) <= EVENTS_PER_STATEMENT:
                # One statement is one transaction on this autocommit connection, and one hop
                # to aiosqlite's thread instead of three (BEGIN, INSERT, COMMIT); a streamed
                # token is usually a batch of one.
                await self._conn.execute_fetchall(
                    "INSERT INTO run_events (run_id, seq, event, data) VALUES "
                    + ", ".join(["(?, ?, ?, ?)"] * len(rows)),
                    [value for row in rows for value in row],
                )
                return
            await self._conn.execute("BEGIN")
            try:
                await self._conn.executemany(
                    "INSERT INTO run_events (run_id, seq, event, data) VALUES (?, ?, ?, ?)", rows
                )
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise

    async def events_after(self, run_id: str, seq: int) -> list[RunEvent]:
        """Return the run's events with a sequence number above `seq`, in order."""
        return [
            RunEvent(*row)
            for row in await fetch_all(
                self._conn,
                "SELECT seq, event, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, seq),
            )
        ]

    async def last_seq(self, run_id: str) -> int:
        """Return the highest sequence number logged for the run (0 if none)."""
        row = await fetch_one(
            self._conn, "SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?", (run_id,)
        )
        return int(row[0]) if row else 0

    async def idempotent_run(self, owner: str, key: str, ttl: timedelta) -> tuple[str, str] | None:
        """Return (fingerprint, run_id) stored for the key, forgetting it once expired."""
        cutoff = (datetime.now(UTC) - ttl).isoformat(timespec="seconds")
        async with self._write:
            await self._conn.execute(
                "DELETE FROM idempotency WHERE owner = ? AND key = ? AND created_at < ?",
                (owner, key, cutoff),
            )
        row = await fetch_one(
            self._conn,
            "SELECT fingerprint, run_id FROM idempotency WHERE owner = ? AND key = ?",
            (owner, key),
        )
        return None if row is None else (str(row[0]), str(row[1]))

    async def prune_events(self, older_than: timedelta) -> int:
        """Delete the event logs of runs that finished longer ago than `older_than`."""
        cutoff = (datetime.now(UTC) - older_than).isoformat(timespec="seconds")
        async with self._write:
            cur = await self._conn.execute(
                "DELETE FROM run_events WHERE run_id IN (SELECT run_id FROM runs WHERE status"
                " IN ('success', 'error', 'timeout', 'interrupted') AND updated_at < ?)",
                (cutoff,),
            )
        return cur.rowcount


class RunChannel:
    """A run's live event stream: logged first, then delivered to every subscriber."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        next_seq: int,
        kind: str = "chat",
        *,
        redactor: Redactor,
    ) -> None:
        self.run_id = run_id
        self.kind = kind
        self.accepted_at = time.monotonic()
        self.first_token_at: float | None = None
        self.events: list[RunEvent] = []
        self.done = False
        # Set when the log cannot be written: subscribers then end with an error, not a hang.
        self.failure: str | None = None
        self._store = store
        self._next_seq = next_seq
        self._pending: list[RunEvent] = []
        self._redaction = EventRedactor(redactor)
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop())

    def publish(self, event: str, data: Any) -> None:
        """Queue an event, redacted; it reaches subscribers once it is on disk.

        This is the one door to the log and the clients, so secrets and system-prompt echoes
        are removed here; streamed text keeps a short tail back until its message ends.
        """
        if self.failure is not None:
            return
        if self.first_token_at is None and metrics.is_first_token(event, data):
            self.first_token_at = time.monotonic()
            metrics.TIME_TO_FIRST_TOKEN.labels(self.kind).observe(
                self.first_token_at - self.accepted_at
            )
        self._queue(self._redaction.events(event, to_jsonable_python(data, fallback=str)))

    def _queue(self, events: list[tuple[str, Any]]) -> None:
        for name, payload in events:
            self._pending.append(RunEvent(self._next_seq, name, json.dumps(payload)))
            self._next_seq += 1
        self._wake.set()

    async def close(self) -> None:
        """Write what is queued (and any held tail), mark the stream finished, stop the writer."""
        if self.failure is None:
            self._queue(self._redaction.flush())
        self._closing = True
        self._wake.set()
        await self._writer

    async def _write_loop(self) -> None:
        # Events that arrive while a batch is being written go out together in the next one.
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await self._store.append(self.run_id, batch)
                except Exception as exc:
                    log.exception("could not log events of run %s", self.run_id)
                    storage = classify(exc)
                    async with self._changed:
                        self.failure = "The run's event log could not be written. " + (
                            storage.message if storage else "See the server log."
                        )
                        self.done = True
                        self._changed.notify_all()
                    return
                async with self._changed:
                    self.events.extend(batch)
                    self._changed.notify_all()
            if self._closing and not self._pending:
                async with self._changed:
                    self.done = True
                    self._changed.notify_all()
                return

    async def wait_past(self, seq: int) -> None:
        """Wait until an event after `seq` is delivered or the stream is done."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.done or (bool(self.events) and self.events[-1].seq > seq)
            )

    def delivered_after(self, seq: int) -> list[RunEvent]:
        """Return the delivered events after `seq`."""
        if not self.events:
            return []
        # Sequence numbers are consecutive, so the position is arithmetic.
        return self.events[max(0, seq - self.events[0].seq + 1) :]


Projection = Callable[[str, Any], list[tuple[str, Any]]]


class RunManager:
    """Creates, executes, streams, cancels and recovers runs."""

    def __init__(
        self, runner: AgentRunner, store: RunStore, limiter: RateLimiter | None = None
    ) -> None:
        self.runner = runner
        self.store = store
        self.limiter = limiter
        self._channels: dict[str, RunChannel] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # A thread's runs take turns through its lock; both maps lose the thread with its
        # last run.
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._thread_runs: dict[str, list[str]] = {}
        self._cancel_actions: dict[str, str] = {}
        self._stopping = False
        # Admission (check the thread, then register the run) is one step per thread, and a
        # key's lookup and storing one step per (owner, key): other threads and keys go on.
        self._admission = KeyedLocks()
        self._idempotency = KeyedLocks()

    @property
    def settings(self) -> Settings:
        """The process's settings (limits, time-outs, retention)."""
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
        assistant_id: str = "agent",
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Validate and queue a run; it starts when the thread's earlier runs are done.

        With an `idempotency_key`, a repeat of the same request returns the original run
        (nothing runs twice) and a different request under the same key is refused (422).
        """
        if idempotency_key is None:
            return await self._create(
                context, thread_id, kind, payload, strategy, metadata, assistant_id
            )
        fingerprint = hashlib.sha256(
            json.dumps([kind, thread_id, payload, strategy], sort_keys=True).encode()
        ).hexdigest()
        async with self._idempotency.hold((context.user_id, idempotency_key)):
            known = await self.store.idempotent_run(
                context.user_id, idempotency_key, timedelta(seconds=self.settings.idempotency_ttl_s)
            )
            if known is not None:
                if known[0] != fingerprint:
                    raise TurnError(
                        422,
                        "This Idempotency-Key was already used with a different request;"
                        " use a new key for a new request.",
                    )
                original = await self.store.get(known[1])
                if original is None:
                    raise TurnError(
                        410,
                        "The run this Idempotency-Key created has been deleted; send the"
                        " request with a new key to run it again.",
                    )
                return original
            key = KeyBinding(context.user_id, idempotency_key, fingerprint)
            return await self._create(
                context, thread_id, kind, payload, strategy, metadata, assistant_id, key
            )

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

    async def _create(
        self,
        context: Context,
        thread_id: str | None,
        kind: RunKind,
        payload: dict[str, Any],
        strategy: MultitaskStrategy,
        metadata: dict[str, Any] | None,
        assistant_id: str,
        key: KeyBinding | None = None,
    ) -> RunRecord:
        # The check of the thread's runs and the registration of this one must not be split by
        # another request's admission (both would pass `reject`). A new thread needs no lock:
        # no other request can know its id yet.
        hold = self._admission.hold(thread_id) if thread_id else contextlib.nullcontext()
        async with hold:
            return await self._admit(
                context, thread_id, kind, payload, strategy, metadata, assistant_id, key
            )

    async def _admit(
        self,
        context: Context,
        thread_id: str | None,
        kind: RunKind,
        payload: dict[str, Any],
        strategy: MultitaskStrategy,
        metadata: dict[str, Any] | None,
        assistant_id: str,
        key: KeyBinding | None,
    ) -> RunRecord:
        new_thread = thread_id is None
        if thread_id is not None:
            await self.runner.check_access(thread_id, context.user_id)
        active = self.active_runs(thread_id) if thread_id else []
        if active:
            if strategy == "reject":
                raise TurnError(
                    409,
                    f"Thread {thread_id} already has a run in progress ({active[0]}); "
                    "multitask_strategy=reject refuses a second one. Wait for it, join it, "
                    "or use enqueue, interrupt or rollback.",
                )
            if strategy in ("interrupt", "rollback"):
                for run_id in active:
                    await self.cancel(run_id, action=strategy)
        else:
            # With nothing ahead of it the run's request can be checked now, so a bad one is
            # a 4xx and never a half-created run; a queued one is checked when it starts.
            prepared = await self._prepare(context, thread_id, payload)
            thread_id = prepared.thread_id
        assert thread_id is not None
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
            await self.create_thread(context, thread_id, title=_title(payload))
        queued = bool(active) and strategy == "enqueue"
        limit = self.settings.max_queued_runs_per_user
        try:
            await self.store.insert(run, key=key, max_pending=limit if queued else None)
        except (QueueFull, sqlite3.IntegrityError) as exc:
            if new_thread:
                await self.runner.threads.delete(thread_id)
            if isinstance(exc, QueueFull):
                raise TurnError(
                    429,
                    f"You already have {limit} runs waiting to start, the most allowed per"
                    " user; wait for them or cancel some before queueing more.",
                ) from None
            # Only the key can clash (run ids are new): another process stored it just now.
            raise TurnError(
                409, "A request with this Idempotency-Key is being handled; retry it."
            ) from None
        self._start(run, context, next_seq=1)
        return run

    def active_runs(self, thread_id: str | None) -> list[str]:
        """Return the ids of the thread's pending and running runs in this process."""
        return list(self._thread_runs.get(thread_id or "", []))

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
            strict_pending=False,
        )

    def _start(self, run: RunRecord, context: Context, *, next_seq: int) -> None:
        channel = RunChannel(
            self.store,
            run.run_id,
            next_seq,
            kind=run.kind,
            redactor=self.runner.services.redactor,
        )
        self._channels[run.run_id] = channel
        self._thread_runs.setdefault(run.thread_id, []).append(run.run_id)
        lock = self._thread_locks.setdefault(run.thread_id, asyncio.Lock())
        self._tasks[run.run_id] = asyncio.create_task(self._drive(run, context, channel, lock))

    # --- executing -----------------------------------------------------------------------

    async def _drive(
        self, run: RunRecord, context: Context, channel: RunChannel, lock: asyncio.Lock
    ) -> None:
        logs.bind(
            run_id=run.run_id,
            thread_id=run.thread_id,
            user=run.owner,
            request_id=context.request_id,
        )
        try:
            async with metrics.queued_then_running(lock):
                await self._execute(run, context, channel)
        except asyncio.CancelledError:
            if self._stopping:
                # Shutting down: the run stays pending/running on disk and resumes at start-up.
                raise
            # Cancelled while queued or running: the thread keeps its last checkpoint.
            action = self._cancel_actions.pop(run.run_id, "interrupt")
            if action == "rollback":
                await delete_run_checkpoints(self.runner.saver, run.thread_id, run.run_id)
                await self._settle_thread(run.thread_id)
            await self.store.set_status(run.run_id, "interrupted")
            channel.publish("error", {"error": "Cancelled", "message": f"Run {action}ed."})
        finally:
            if not self._stopping:
                metrics.RUN_DURATION.labels(run.kind).observe(
                    time.monotonic() - channel.accepted_at
                )
            await channel.close()
            if self.limiter is not None and self.limiter.tpm:
                used = await self.runner.services.tasks.run_tokens(run.run_id)
                self.limiter.spend_tokens(run.owner, used)
            runs = self._thread_runs.get(run.thread_id, [])
            if run.run_id in runs:
                runs.remove(run.run_id)
            if not runs:
                # Every run that waits for the lock is listed: with none left, nobody needs it.
                self._thread_runs.pop(run.thread_id, None)
                self._thread_locks.pop(run.thread_id, None)
            self._tasks.pop(run.run_id, None)
            self._channels.pop(run.run_id, None)

    async def _execute(self, run: RunRecord, context: Context, channel: RunChannel) -> None:
        await self.store.set_status(run.run_id, "running", attempt=run.attempt)
        try:
            async with asyncio.timeout(self.settings.turn_timeout_s):
                await self._run_graph(run, context, channel)
        except TimeoutError:
            metrics.RUNAWAY_STOPS.labels("turn_timeout").inc()
            answer = await self._stop_for_time(run.thread_id)
            if run.kind == "chat":
                channel.publish("token", {"text": answer})
                channel.publish(
                    "done",
                    {
                        "thread_id": run.thread_id,
                        "run_id": run.run_id,
                        "message": answer,
                        "tool_calls": [],
                        "model_used": "timeout",
                        "fallback_used": False,
                        "latency_ms": self.settings.turn_timeout_s * 1000,
                        "interrupt": None,
                        "usage": {},
                    },
                )
            else:
                channel.publish("values", await self._values(run.thread_id))
            await self.store.set_status(run.run_id, "timeout", error="turn timeout")
            return
        except TurnError as exc:
            channel.publish("error", {"error": "BadRequest", "message": exc.message})
            await self.store.set_status(run.run_id, "error", error=exc.message)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            storage = classify(exc)
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
            await self._record_end(run.run_id, "error", error["error"])
            return
        await self._record_end(run.run_id, "success")

    async def _record_end(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        """Record how the run ended, waiting out a storage outage (a lock, a full disk)."""
        for attempt in range(STORAGE_RETRIES):
            try:
                await self.store.set_status(run_id, status, error=error)
                return
            except Exception as exc:
                if classify(exc) is None or attempt == STORAGE_RETRIES - 1:
                    raise
                await asyncio.sleep(1.0)

    async def _run_graph(self, run: RunRecord, context: Context, channel: RunChannel) -> None:
        if run.attempt > 1 and await self._reached_graph(run):
            info = await self.runner.threads.get(run.thread_id)
            prepared = PreparedRun(run.thread_id, info, None, "", continue_run=True)
        else:
            prepared = await self._prepare(context, run.thread_id, run.payload)
        if run.kind == "chat":
            async for turn_event in self.runner.chat_events(
                prepared, context, run.run_id, attempt=run.attempt
            ):
                channel.publish(turn_event.kind, turn_event.data)
        else:
            await self._execute_agent_run(run, context, channel, prepared)

    async def _reached_graph(self, run: RunRecord) -> bool:
        """Whether the run's input got into the thread before the previous process died.

        If not, continuing "from the last checkpoint" would finish the thread's previous turn
        and silently drop this one: such a run starts over from its request instead. A new
        message is in once a checkpoint carries the run's id; an approval is in once it is
        recorded against the interrupt, which then no longer waits (no checkpoint yet).
        """
        saver = self.runner.saver
        async with saver.lock:
            row = await fetch_one(
                saver.conn,
                "SELECT 1 FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''"
                " AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ? LIMIT 1",
                (run.thread_id, run.run_id),
            )
        if row is not None:
            return True
        command = run.payload.get("command") or {}
        if run.payload.get("resume") is None and command.get("resume") is None:
            return False
        state = await self.runner.graph.aget_state({"configurable": {"thread_id": run.thread_id}})
        return not state.interrupts

    async def _stop_for_time(self, thread_id: str) -> str:
        """End a turn that ran out of time with an answer saying what it did and why it stopped."""
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        state = await self.runner.graph.aget_state(config)
        ran = [
            f"{m.name} ({summarize(_json_or_empty(m.content))})"
            for m in turn_messages(state.values.get("messages", []))
            if isinstance(m, ToolMessage)
        ]
        answer = f"I stopped because this turn took longer than {self.settings.turn_timeout_s:g} s."
        answer += f" Before that I ran: {'; '.join(ran)}." if ran else " Nothing was changed."
        stop = AIMessage(content=answer, response_metadata={"model_used": "timeout"})
        await self.runner.graph.aupdate_state(config, {"messages": [stop]}, as_node="model_call")
        await self.runner.threads.finish_run(thread_id, "idle")
        return answer

    async def _values(self, thread_id: str) -> dict[str, Any]:
        state = await self.runner.graph.aget_state({"configurable": {"thread_id": thread_id}})
        return dict(state.values)

    async def _execute_agent_run(
        self, run: RunRecord, context: Context, channel: RunChannel, prepared: PreparedRun
    ) -> None:
        modes = stream_modes(run.payload.get("stream_mode"))
        channel.publish("metadata", {"run_id": run.run_id, "attempt": run.attempt})
        graph_modes = tuple("messages" if m == "messages-tuple" else m for m in modes)
        outcome = RunOutcome()
        async for mode, payload in self.runner.execute(
            prepared, context, run.run_id, outcome, graph_modes
        ):
            if mode == "messages":
                chunk, meta = payload
                channel.publish("messages", [chunk, _public_metadata(meta)])
            elif mode == "updates":
                channel.publish("updates", payload)
            else:
                channel.publish(mode, payload)
        if "values" in modes and outcome.interrupts:
            # LangGraph's values mode does not show a pause; clients expect it in the state.
            channel.publish("values", {**outcome.values, "__interrupt__": outcome.interrupts})

    async def _settle_thread(self, thread_id: str) -> None:
        state = await self.runner.graph.aget_state({"configurable": {"thread_id": thread_id}})
        interrupt = None
        for item in state.interrupts:
            interrupt = item.value if isinstance(item.value, dict) else {"value": item.value}
            break
        await self.runner.threads.finish_run(
            thread_id, "interrupted" if interrupt else "idle", interrupt
        )

    # --- watching ------------------------------------------------------------------------

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """Yield the run's events after sequence `after`: from the log, then live."""
        # Take the live channel before reading the log: whatever it delivers later has a
        # higher sequence number than anything the log read can miss.
        channel = self._channels.get(run_id)
        last = after
        for event in await self.store.events_after(run_id, last):
            yield event
            last = event.seq
        while channel is not None:
            for event in channel.delivered_after(last):
                yield event
                last = event.seq
            if channel.done:
                if channel.failure is not None:
                    data = json.dumps({"error": "EventLogError", "message": channel.failure})
                    yield RunEvent(last + 1, "error", data)
                break
            await channel.wait_past(last)

    async def wait(self, run_id: str) -> RunRecord:
        """Wait for the run to finish and return it."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.wait({task})
        run = await self.store.get(run_id)
        assert run is not None
        return run

    def is_live(self, run_id: str) -> bool:
        """Return whether the run is pending or running in this process."""
        return run_id in self._tasks

    async def cancel(self, run_id: str, action: str = "interrupt") -> bool:
        """Stop a pending or running run; `rollback` also drops what it wrote to the thread."""
        task = self._tasks.get(run_id)
        if task is None:
            return False
        self._cancel_actions[run_id] = action
        task.cancel()
        await asyncio.wait({task})
        return True

    # --- life cycle ----------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """Resume the runs a previous process left unfinished; return their ids."""
        resumed: list[str] = []
        for run in await self.store.unfinished():
            context = run.context()
            if run.status == "running":
                run.attempt += 1
                log.warning("resuming run %s (attempt %d)", run.run_id, run.attempt)
            self._start(run, context, next_seq=await self.store.last_seq(run.run_id) + 1)
            resumed.append(run.run_id)
        return resumed

    async def shutdown(self, grace_s: float) -> None:
        """Give in-flight runs `grace_s` to finish, then stop them, leaving them resumable."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        self._stopping = True
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


def stream_modes(requested: Any) -> tuple[str, ...]:
    """Normalise the client's stream_mode into a tuple, refusing modes we do not serve."""
    modes = [requested] if isinstance(requested, str) else list(requested or ["values"])
    unknown = [m for m in modes if m not in SUPPORTED_MODES]
    if unknown:
        raise TurnError(
            422,
            f"Unsupported stream_mode {unknown}; supported: {', '.join(SUPPORTED_MODES)}.",
        )
    return tuple(dict.fromkeys(modes))


SUPPORTED_MODES = ("values", "updates", "messages-tuple", "custom")


def _json_or_empty(content: Any) -> dict[str, Any]:
    try:
        value = json.loads(content) if isinstance(content, str) else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _public_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    keep = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path", "run_id")
    return {k: v for k, v in meta.items() if k in keep or k.startswith("ls_")}


def _title(payload: dict[str, Any]) -> str:
    message = payload.get("message")
    if isinstance(message, str):
        return message[:80]
    return title_of(payload.get("input"))
