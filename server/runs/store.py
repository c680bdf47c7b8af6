"""The runs table, its leases, idempotency keys and the append-only event log (runs.sqlite).

Whether a run is live is decided here and only here: a `running` run belongs to the process
named in `lease_owner` until `lease_expires`; the owner renews the lease while it works, and
any process may claim a run whose lease ran out. Admission (the thread's live runs, the
multitask strategy, the queue limit and the idempotency key) is one `BEGIN IMMEDIATE`
transaction, so two requests — in one process or in two — can never both pass `reject`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from graph import metrics
from graph.context import TIER_NAMES, Context
from server.runs.group_commit import GroupCommit
from server.runs.wakeups import EVENTS, RUNS, Wakeups
from tools.database import Connection, is_postgres, open_migrated
from tools.migrations import Migration, columns_of
from tools.postgres import PgConnection, one_replica, pg_schema
from tools.sqlite import fetch_all, fetch_one, now_iso

log = logging.getLogger("server.runs.engine")

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
RunKind = Literal["chat", "agent", "thread"]
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
CancelAction = Literal["interrupt", "rollback"]
FINISHED: tuple[RunStatus, ...] = ("success", "error", "timeout", "interrupted")

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
    updated_at TEXT NOT NULL
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


async def _identities(conn: Connection) -> None:
    # Runs stored before identities were: they resume as read-only.
    if "identity" not in await columns_of(conn, "runs"):
        await conn.execute("ALTER TABLE runs ADD COLUMN identity TEXT NOT NULL DEFAULT '{}'")


LEASES = """
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN lease_expires REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
ALTER TABLE runs ADD COLUMN cancel TEXT;
CREATE INDEX IF NOT EXISTS runs_live ON runs (status, thread_id)
    WHERE status IN ('pending', 'running');
"""

MIGRATIONS: Sequence[Migration] = (SCHEMA, _identities, LEASES)
PG_MIGRATIONS: Sequence[Migration] = (
    pg_schema(SCHEMA, rowid=("runs",)),
    "ALTER TABLE runs ADD COLUMN identity TEXT NOT NULL DEFAULT '{}'",
    pg_schema(LEASES),
)

# SQLite allows 32,766 bound values per statement; an event binds 4.
EVENTS_PER_STATEMENT = 500
RUN_COLUMNS = (
    "run_id, thread_id, owner, assistant_id, kind, status, multitask_strategy, payload, metadata,"
    " attempt, error, created_at, updated_at, identity, lease_owner"
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
    # The process holding the run's lease ("host:pid:boot"), while it runs.
    lease_owner: str | None = None

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


@dataclass(frozen=True)
class RunEvent:
    """One logged event: its sequence number (the SSE id), name and JSON data."""

    seq: int
    event: str
    data: str


class QueueFull(Exception):
    """The owner already has as many pending runs as allowed; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"pending run limit {limit} reached")
        self.limit = limit


class ThreadBusy(Exception):
    """`reject`: the thread already has a live run; nothing was stored."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


class KeyReused(Exception):
    """The idempotency key was stored with a different request."""


class KeyOrphaned(Exception):
    """The run an idempotency key created has been deleted."""


@dataclass
class Admission:
    """What admission decided: the run (new, or the key's original) and the runs to stop."""

    run: RunRecord
    new: bool
    # Running runs of the thread asked to stop (interrupt / rollback) for this one.
    stopping: list[str] = field(default_factory=list)


def _record(row: Any) -> RunRecord:
    values = list(row)
    values[7] = json.loads(values[7])
    values[8] = json.loads(values[8])
    values[13] = json.loads(values[13])
    return RunRecord(*values)


class RunStore:
    """The runs table, leases and the append-only event log."""

    def __init__(self, conn: Connection, wakeups: Wakeups | None = None) -> None:
        self._conn = conn
        # Other replicas' notifications (PostgreSQL); inert on SQLite.
        self.wakeups = wakeups or Wakeups(None)
        # Many runs share this connection; a transaction spans several awaits, so writes
        # take turns instead of landing inside another run's open transaction.
        self._write = asyncio.Lock()
        # Events that runs append at about the same time go to the log in one statement.
        self._events: GroupCommit[tuple[str, int, str, str]] = GroupCommit(self._append_rows)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        busy_timeout_ms: int,
        synchronous: str,
        database_url: str | None = None,
        listen: bool = True,
    ) -> RunStore:
        """Open (and create or upgrade) the run store at `path`.

        On PostgreSQL it listens for other replicas' wake-ups unless `listen` is off (behind a
        transaction-pooling pgbouncer, where LISTEN cannot work): then it polls.
        """
        conn = await open_migrated(
            path,
            "runs",
            MIGRATIONS,
            PG_MIGRATIONS,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=synchronous,
            database_url=database_url,
        )
        wakeups = Wakeups(database_url if listen else None)
        wakeups.start()
        return cls(conn, wakeups)

    async def close(self) -> None:
        """Stop listening and close the connection."""
        await self.wakeups.stop()
        await self._conn.close()

    @asynccontextmanager
    async def one_replica(self, name: str) -> AsyncIterator[bool]:
        """Yield whether this process should run the background pass `name` now.

        On PostgreSQL one replica at a time does (an advisory lock, not waited for); on
        SQLite every process does, as before.
        """
        if isinstance(self._conn, PgConnection):
            async with one_replica(self._conn.pool, f"taskagent:{name}") as held:
                yield held
        else:
            yield True

    async def _notify(self, *channels: str) -> None:
        """Tell the other replicas to look again now (PostgreSQL; see server.runs.wakeups)."""
        if is_postgres(self._conn):
            for channel in channels:
                await self._conn.execute(f"NOTIFY {channel}")

    # --- admission -----------------------------------------------------------------------

    async def admit(
        self,
        run: RunRecord,
        *,
        key: KeyBinding | None,
        key_ttl: timedelta,
        max_pending: int,
        lease_owner: str,
        lease_s: float,
    ) -> Admission:
        """Decide a new run against its thread's live runs and store it, in one transaction.

        The run starts leased to `lease_owner` when its thread has no live run; otherwise it
        waits as `pending` (enqueue), stops the live ones first (interrupt / rollback: pending
        ones end at once, running ones are asked to stop), or is refused (reject: ThreadBusy).
        A stored key returns the original run (KeyReused / KeyOrphaned when it cannot);
        QueueFull when the owner has `max_pending` waiting runs.
        """
        async with self._write, self._transaction():
            if key is not None:
                original = await self._keyed_run(key, key_ttl)
                if original is not None:
                    return Admission(original, new=False)
            live = await fetch_all(
                self._conn,
                "SELECT run_id, status FROM runs WHERE thread_id = ?"
                " AND status IN ('pending', 'running') ORDER BY created_at, rowid",
                (run.thread_id,),
            )
            stopping: list[str] = []
            if live:
                strategy = run.multitask_strategy
                if strategy == "reject":
                    raise ThreadBusy(str(live[0][0]))
                if strategy in ("interrupt", "rollback"):
                    stopping = [str(r[0]) for r in live if r[1] == "running"]
                    await self._conn.execute(
                        "UPDATE runs SET status = 'interrupted', updated_at = ? WHERE thread_id = ?"
                        " AND status = 'pending'",
                        (now_iso(), run.thread_id),
                    )
                    await self._conn.execute(
                        "UPDATE runs SET cancel = ? WHERE thread_id = ? AND status = 'running'",
                        (strategy, run.thread_id),
                    )
                else:
                    row = await fetch_one(
                        self._conn,
                        "SELECT COUNT(*) FROM runs WHERE owner = ? AND status = 'pending'",
                        (run.owner,),
                    )
                    if row is not None and row[0] >= max_pending:
                        raise QueueFull(max_pending)
                run.status = "pending"
            else:
                run.status, run.lease_owner = "running", lease_owner
            await self._insert(run, lease_s)
            if key is not None:
                await self._conn.execute(
                    "INSERT INTO idempotency (owner, key, fingerprint, run_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key.owner, key.key, key.fingerprint, run.run_id, now_iso()),
                )
            admitted = Admission(run, new=True, stopping=stopping)
        await self._notify(RUNS)
        return admitted

    async def _keyed_run(self, key: KeyBinding, ttl: timedelta) -> RunRecord | None:
        cutoff = (datetime.now(UTC) - ttl).isoformat(timespec="seconds")
        await self._conn.execute(
            "DELETE FROM idempotency WHERE owner = ? AND key = ? AND created_at < ?",
            (key.owner, key.key, cutoff),
        )
        row = await fetch_one(
            self._conn,
            "SELECT fingerprint, run_id FROM idempotency WHERE owner = ? AND key = ?",
            (key.owner, key.key),
        )
        if row is None:
            return None
        if row[0] != key.fingerprint:
            raise KeyReused()
        original = await self.get(str(row[1]))
        if original is None:
            raise KeyOrphaned()
        return original

    async def _insert(self, run: RunRecord, lease_s: float) -> None:
        now = time.time()
        await self._conn.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}, lease_expires, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                run.lease_owner,
                now + lease_s if run.lease_owner else 0,
                now if run.lease_owner else None,
            ),
        )

    # --- leases --------------------------------------------------------------------------

    async def claim(
        self,
        lease_owner: str,
        lease_s: float,
        limit: int,
        *,
        pending_of: Collection[str] | None = None,
    ) -> list[RunRecord]:
        """Lease up to `limit` runs to `lease_owner`: expired ones first, then queued ones.

        A `running` run whose lease ran out is taken over (its attempt counts up); a `pending`
        run is taken only when it is the oldest of its thread and nothing runs there, and,
        with `pending_of`, only when it is one of those.
        """
        only = (
            "" if pending_of is None else f" AND r.run_id IN ({', '.join('?' * len(pending_of))})"
        )
        # On PostgreSQL replicas claim side by side instead of taking turns with every other
        # writer of the runs table: each locks only the rows it takes and skips those another
        # replica is taking. A run is never claimed twice: a row locked by another claim is
        # skipped, and once that claim commits the row no longer qualifies (re-checked under
        # the lock). Per-thread order holds because a later run qualifies only when no
        # earlier one of its thread is still pending, which a concurrent claim leaves visible.
        pg = is_postgres(self._conn)
        async with self._write, self._transaction(serialized=not pg):
            now = time.time()
            rows = await fetch_all(
                self._conn,
                f"SELECT {RUN_COLUMNS} FROM runs AS r WHERE (r.status = 'running'"
                f" AND r.lease_expires < ?) OR (r.status = 'pending'{only} AND NOT EXISTS ("
                " SELECT 1 FROM runs AS o WHERE o.thread_id = r.thread_id"
                " AND (o.status = 'running' OR (o.status = 'pending'"
                " AND (o.created_at < r.created_at OR (o.created_at = r.created_at"
                " AND o.rowid < r.rowid))))))"
                " ORDER BY r.status DESC, r.created_at, r.rowid LIMIT ?"
                + (" FOR UPDATE OF r SKIP LOCKED" if pg else ""),
                (now, *(pending_of or ()), limit),
            )
            claimed = [_record(row) for row in rows]
            for run in claimed:
                if run.status == "running":
                    run.attempt += 1
                run.status, run.lease_owner = "running", lease_owner
                await self._conn.execute(
                    "UPDATE runs SET status = 'running', lease_owner = ?, lease_expires = ?,"
                    " heartbeat_at = ?, attempt = ?, updated_at = ? WHERE run_id = ?",
                    (lease_owner, now + lease_s, now, run.attempt, now_iso(), run.run_id),
                )
            return claimed

    async def renew(self, lease_owner: str, lease_s: float) -> dict[str, str | None]:
        """Extend every lease `lease_owner` holds; return {run_id: requested cancel action}."""
        async with self._write, self._transaction():
            now = time.time()
            await self._conn.execute(
                "UPDATE runs SET lease_expires = ?, heartbeat_at = ?"
                " WHERE lease_owner = ? AND status = 'running'",
                (now + lease_s, now, lease_owner),
            )
            rows = await fetch_all(
                self._conn,
                "SELECT run_id, cancel FROM runs WHERE lease_owner = ? AND status = 'running'",
                (lease_owner,),
            )
        return {str(row[0]): row[1] for row in rows}

    async def release(self, lease_owner: str) -> None:
        """Give up every lease `lease_owner` holds, so another process resumes its runs now."""
        async with self._write:
            await self._conn.execute(
                "UPDATE runs SET lease_expires = 0 WHERE lease_owner = ? AND status = 'running'",
                (lease_owner,),
            )

    async def release_run(self, run_id: str, lease_owner: str) -> None:
        """Give up the lease of one run `lease_owner` holds."""
        async with self._write:
            await self._conn.execute(
                "UPDATE runs SET lease_expires = 0 WHERE run_id = ? AND lease_owner = ?"
                " AND status = 'running'",
                (run_id, lease_owner),
            )

    async def lease_owners(self) -> list[str]:
        """Return the processes holding leases on running runs."""
        rows = await fetch_all(
            self._conn,
            "SELECT DISTINCT lease_owner FROM runs WHERE status = 'running'"
            " AND lease_owner IS NOT NULL",
        )
        return [str(row[0]) for row in rows]

    async def request_cancel(self, run_id: str, action: CancelAction) -> RunStatus | None:
        """Ask a live run to stop; return its status before (None: no such run).

        A pending run ends now; a running one at its owner's next lease renewal.
        """
        async with self._write, self._transaction():
            row = await fetch_one(self._conn, "SELECT status FROM runs WHERE run_id = ?", (run_id,))
            if row is None:
                return None
            if row[0] == "pending":
                await self._conn.execute(
                    "UPDATE runs SET status = 'interrupted', updated_at = ? WHERE run_id = ?",
                    (now_iso(), run_id),
                )
            elif row[0] == "running":
                await self._conn.execute(
                    "UPDATE runs SET cancel = ? WHERE run_id = ?", (action, run_id)
                )
            status: RunStatus = row[0]
        await self._notify(RUNS)
        return status

    # --- runs ----------------------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord | None:
        """Return the run, or None."""
        row = await fetch_one(
            self._conn, f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
        )
        return None if row is None else _record(row)

    async def status(self, run_id: str) -> RunStatus | None:
        """Return the run's status, or None when there is no such run."""
        row = await fetch_one(self._conn, "SELECT status FROM runs WHERE run_id = ?", (run_id,))
        return None if row is None else row[0]

    async def pending_count(self) -> int:
        """Return how many runs wait to be claimed, in every process."""
        row = await fetch_one(self._conn, "SELECT COUNT(*) FROM runs WHERE status = 'pending'")
        return int(row[0]) if row else 0

    async def has_pending(self, thread_id: str) -> bool:
        """Return whether a run of the thread waits to be claimed."""
        row = await fetch_one(
            self._conn,
            "SELECT 1 FROM runs WHERE thread_id = ? AND status = 'pending' LIMIT 1",
            (thread_id,),
        )
        return row is not None

    async def live(self, thread_id: str) -> list[str]:
        """Return the ids of the thread's pending and running runs, oldest first."""
        rows = await fetch_all(
            self._conn,
            "SELECT run_id FROM runs WHERE thread_id = ? AND status IN ('pending', 'running')"
            " ORDER BY created_at, rowid",
            (thread_id,),
        )
        return [str(row[0]) for row in rows]

    async def live_on_assistant(self, assistant_id: str, owner: str) -> list[str]:
        """Return the ids of `owner`'s pending and running runs on the assistant."""
        rows = await fetch_all(
            self._conn,
            "SELECT run_id FROM runs WHERE assistant_id = ? AND owner = ?"
            " AND status IN ('pending', 'running')",
            (assistant_id, owner),
        )
        return [str(row[0]) for row in rows]

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
        lease_owner: str | None = None,
    ) -> bool:
        """Record a run's new status (and error or attempt number); a finished run's lease ends.

        With `lease_owner`, only while that process still holds the run: a process that lost
        its lease (another took the run over) changes nothing. Return whether it was recorded.
        """
        ends = status in FINISHED
        guard = " AND lease_owner = ?" if lease_owner else ""
        async with self._write:
            cur = await self._conn.execute(
                "UPDATE runs SET status = ?, error = COALESCE(?, error),"
                " attempt = COALESCE(?, attempt), updated_at = ?"
                + (", lease_owner = NULL, lease_expires = 0, cancel = NULL" if ends else "")
                + f" WHERE run_id = ?{guard}",
                (status, error, attempt, now_iso(), run_id, *([lease_owner] if guard else [])),
            )
        if cur.rowcount == 0:
            return False
        await self._notify(EVENTS, RUNS) if ends else await self._notify(EVENTS)
        # Only once it is recorded: a write that failed is retried and must count once.
        detail = {"run_id": run_id, "status": status} | ({"error": error} if error else {})
        log.info("run %s", status, extra=detail)
        if ends:
            metrics.RUNS.labels(status).inc()
        return True

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

    # --- the event log -------------------------------------------------------------------

    async def append(self, run_id: str, events: list[RunEvent]) -> None:
        """Append events, returning once they are committed (durable before anyone sees them)."""
        await self._events.append([(run_id, e.seq, e.event, e.data) for e in events])

    async def _append_rows(self, rows: Sequence[tuple[str, int, str, str]]) -> None:
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
            else:
                async with self._transaction():
                    await self._conn.executemany(
                        "INSERT INTO run_events (run_id, seq, event, data) VALUES (?, ?, ?, ?)",
                        rows,
                    )
        await self._notify(EVENTS)

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

    def _transaction(self, *, serialized: bool = True) -> _Transaction:
        return _Transaction(self._conn, "BEGIN IMMEDIATE" if serialized else "BEGIN")


class _Transaction:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on any exception (the caller holds the lock).

    IMMEDIATE: the reads and writes inside see and leave one consistent state, also against
    another process on the same file (or replica: the store's advisory lock). A plain `BEGIN`
    on PostgreSQL is an ordinary transaction, for statements that lock their own rows.
    """

    def __init__(self, conn: Connection, begin: str) -> None:
        self._conn, self._begin = conn, begin

    async def __aenter__(self) -> None:
        await self._conn.execute(self._begin)

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        await self._conn.execute("ROLLBACK" if kind else "COMMIT")
