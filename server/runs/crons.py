"""Crons: run requests on a schedule, kept in runs.sqlite and fired by any server process.

Firing one slot, exactly once, whichever processes run:

1. **Claim**, in one `BEGIN IMMEDIATE` transaction: every due cron's next run moves to the
   first slot after now, and the slot it was due for is recorded as *firing*, with a claim
   that lapses after the run lease. Two processes cannot both claim a slot.
2. **Fire** through the run engine (`RunManager.create`) under the idempotency key
   `cron:<cron id>:<slot>` of the cron's owner, with the owner's identity.
3. **Record**: the firing is cleared and the run noted (`cron_runs`) in one transaction.

A process that dies between 1 and 3 leaves the slot firing; once its claim lapses another
process fires it again under the same key, which returns the run if it was already created.

Catch-up: slots missed while no server ran (or while the cron was disabled) fire once, as one
run for the oldest missed slot; the cron then continues at its next slot after now.

A stateless cron (no thread) runs on a new thread each time; with `on_run_completed` "delete"
(the default) that thread is deleted once the run has finished, from `cron_runs`, so a
restart in between still deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from graph.context import Context, Role
from server.runs.runner import TurnError
from server.runs.store import FINISHED, RunRecord
from tools.database import Connection, open_migrated
from tools.migrations import Migration
from tools.postgres import pg_schema
from tools.sqlite import fetch_all, fetch_one
from tools.storage_errors import classify, log_failure

log = logging.getLogger(__name__)

OnRunCompleted = Literal["delete", "keep"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS crons (
    cron_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    role TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    thread_id TEXT,
    schedule TEXT NOT NULL,
    timezone TEXT,
    end_at REAL,
    enabled INTEGER NOT NULL,
    on_run_completed TEXT,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    next_run_at REAL NOT NULL,
    firing_slot REAL,
    firing_until REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS crons_owner ON crons (owner, created_at);
CREATE INDEX IF NOT EXISTS crons_due ON crons (next_run_at) WHERE enabled = 1;
CREATE TABLE IF NOT EXISTS cron_runs (
    run_id TEXT PRIMARY KEY,
    cron_id TEXT NOT NULL,
    slot REAL NOT NULL,
    thread_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    delete_thread INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cron_runs_cleanup ON cron_runs (delete_thread) WHERE delete_thread = 1;
"""

MIGRATIONS: Sequence[Migration] = (SCHEMA,)
PG_MIGRATIONS: Sequence[Migration] = (pg_schema(SCHEMA),)
COLUMNS = (
    "cron_id, owner, role, assistant_id, thread_id, schedule, timezone, end_at, enabled,"
    " on_run_completed, payload, metadata, next_run_at, created_at, updated_at"
)
# Most crons claimed in one pass; the rest are taken at once by the next pass.
CLAIM_BATCH = 100
# A cron is due at now (bound three times): enabled, not ended, and its next slot has come
# with nothing firing, or a firing's claim lapsed (its claimer died or stalled).
DUE = (
    "enabled = 1 AND (end_at IS NULL OR end_at >= ?)"
    " AND ((firing_slot IS NULL AND next_run_at <= ?)"
    " OR (firing_slot IS NOT NULL AND firing_until < ?))"
)
# How long the record of which run each slot fired is kept, and how often it is trimmed.
FIRINGS_KEPT_S = 7 * 86400.0
PRUNE_EVERY_S = 3600.0


class CronLimitReached(Exception):
    """The owner has the most crons allowed."""


def check_schedule(schedule: str) -> None:
    """Raise TurnError 422 unless `schedule` is a cron expression (5 fields, or 6 with seconds)."""
    if not croniter.is_valid(schedule):
        raise TurnError(
            422,
            f"Invalid cron schedule {schedule!r}: use the standard cron format (minute hour"
            " day_of_month month day_of_week), e.g. '*/5 * * * *' for every 5 minutes.",
        )


def check_timezone(timezone: str | None) -> None:
    """Raise TurnError 422 unless `timezone` is None or an IANA time zone."""
    if timezone is None:
        return
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TurnError(
            422, f"Invalid timezone {timezone!r}: use an IANA name such as 'America/New_York'."
        ) from None


def next_slot(schedule: str, timezone: str | None, after: float) -> float:
    """The first slot of `schedule` (read in `timezone`, else UTC) strictly after `after`."""
    base = datetime.fromtimestamp(after, UTC)
    if timezone:
        base = base.astimezone(ZoneInfo(timezone))
    following: datetime = croniter(schedule, base).get_next(datetime)
    return following.timestamp()


def stamp_now() -> str:
    """Now, ISO 8601 in UTC to the microsecond (crons made in one second still sort)."""
    return datetime.now(UTC).isoformat()


def iso(stamp: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC."""
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat()


@dataclass
class CronRecord:
    """One cron as stored."""

    cron_id: str
    owner: str
    role: Role
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    end_at: float | None
    enabled: bool
    on_run_completed: OnRunCompleted | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    next_run_at: float
    created_at: str = field(default_factory=stamp_now)
    updated_at: str = field(default_factory=stamp_now)

    def context(self) -> Context:
        """The identity the cron's runs act with: its creator's."""
        return Context(user_id=self.owner, role=self.role, request_id=f"cron-{self.cron_id}")


def new_cron(
    *,
    owner: str,
    role: Role,
    assistant_id: str,
    thread_id: str | None,
    schedule: str,
    timezone: str | None,
    end_at: float | None,
    enabled: bool,
    on_run_completed: OnRunCompleted | None,
    payload: dict[str, Any],
    metadata: dict[str, Any],
) -> CronRecord:
    """A cron whose first run is its schedule's next slot after now."""
    return CronRecord(
        cron_id=str(uuid.uuid4()),
        owner=owner,
        role=role,
        assistant_id=assistant_id,
        thread_id=thread_id,
        schedule=schedule,
        timezone=timezone,
        end_at=end_at,
        enabled=enabled,
        on_run_completed=on_run_completed if thread_id is None else None,
        payload=payload,
        metadata=metadata,
        next_run_at=next_slot(schedule, timezone, time.time()),
    )


def _record(row: Any) -> CronRecord:
    role: Role = row[2] if row[2] in ("read", "write", "admin") else "read"
    return CronRecord(
        cron_id=row[0],
        owner=row[1],
        role=role,
        assistant_id=row[3],
        thread_id=row[4],
        schedule=row[5],
        timezone=row[6],
        end_at=row[7],
        enabled=bool(row[8]),
        on_run_completed=row[9],
        payload=json.loads(row[10]),
        metadata=json.loads(row[11]),
        next_run_at=row[12],
        created_at=row[13],
        updated_at=row[14],
    )


class CronStore:
    """The crons table and the runs they fired, in runs.sqlite."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._write = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: Path, *, busy_timeout_ms: int, synchronous: str, database_url: str | None = None
    ) -> CronStore:
        """Open runs.sqlite and bring the crons tables up to date."""
        conn = await open_migrated(
            path,
            "crons",
            MIGRATIONS,
            PG_MIGRATIONS,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=synchronous,
            database_url=database_url,
        )
        return cls(conn)

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> Any:
        async with self._write:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def create(self, cron: CronRecord, *, limit: int) -> None:
        """Store a new cron; CronLimitReached (nothing stored) when the owner has `limit`."""
        async with self._transaction() as conn:
            row = await fetch_one(conn, "SELECT COUNT(*) FROM crons WHERE owner = ?", (cron.owner,))
            if row is not None and int(row[0]) >= limit:
                raise CronLimitReached
            await conn.execute(
                f"INSERT INTO crons ({COLUMNS}) VALUES ({', '.join('?' * 15)})",
                (
                    cron.cron_id,
                    cron.owner,
                    cron.role,
                    cron.assistant_id,
                    cron.thread_id,
                    cron.schedule,
                    cron.timezone,
                    cron.end_at,
                    int(cron.enabled),
                    cron.on_run_completed,
                    json.dumps(cron.payload),
                    json.dumps(cron.metadata),
                    cron.next_run_at,
                    cron.created_at,
                    cron.updated_at,
                ),
            )

    async def get(self, cron_id: str, owner: str) -> CronRecord | None:
        """The owner's cron of that id, or None (another user's cron is None too)."""
        row = await fetch_one(
            self._conn,
            f"SELECT {COLUMNS} FROM crons WHERE cron_id = ? AND owner = ?",
            (cron_id, owner),
        )
        return None if row is None else _record(row)

    async def of_owner(self, owner: str) -> list[CronRecord]:
        """Every cron of the owner, oldest first (an owner has at most the per-user limit)."""
        rows = await fetch_all(
            self._conn,
            f"SELECT {COLUMNS} FROM crons WHERE owner = ? ORDER BY created_at, cron_id",
            (owner,),
        )
        return [_record(row) for row in rows]

    async def replace(self, cron: CronRecord) -> bool:
        """Write back an edited cron (schedule, end, enabled, payload...); False when gone."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "UPDATE crons SET schedule = ?, timezone = ?, end_at = ?, enabled = ?,"
                " on_run_completed = ?, payload = ?, metadata = ?, next_run_at = ?,"
                " updated_at = ? WHERE cron_id = ? AND owner = ?",
                (
                    cron.schedule,
                    cron.timezone,
                    cron.end_at,
                    int(cron.enabled),
                    cron.on_run_completed,
                    json.dumps(cron.payload),
                    json.dumps(cron.metadata),
                    cron.next_run_at,
                    cron.updated_at,
                    cron.cron_id,
                    cron.owner,
                ),
            )
            return bool(cursor.rowcount == 1)

    async def delete(self, cron_id: str, owner: str) -> bool:
        """Delete the owner's cron; False when there is none."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM crons WHERE cron_id = ? AND owner = ?", (cron_id, owner)
            )
            return bool(cursor.rowcount == 1)

    async def claim(self, now: float, claim_s: float) -> list[tuple[CronRecord, float]]:
        """Claim every due slot (and every firing whose claimer let its claim lapse).

        Returns (cron, slot) pairs; each due cron's next run has moved past `now`.
        """
        claimed: list[tuple[CronRecord, float]] = []
        # Looked for first without the write lock: most passes find nothing due, and run
        # admission shares this file's lock.
        if not await fetch_one(self._conn, f"SELECT 1 FROM crons WHERE {DUE} LIMIT 1", (now,) * 3):
            return claimed
        async with self._transaction() as conn:
            rows = await fetch_all(
                conn,
                f"SELECT {COLUMNS}, firing_slot FROM crons WHERE {DUE}"
                " ORDER BY next_run_at LIMIT ?",
                (now, now, now, CLAIM_BATCH),
            )
            for row in rows:
                cron, lapsed = _record(row[:15]), row[15]
                if lapsed is not None:
                    slot, following = float(lapsed), cron.next_run_at
                else:
                    slot = cron.next_run_at
                    following = next_slot(cron.schedule, cron.timezone, now)
                await conn.execute(
                    "UPDATE crons SET next_run_at = ?, firing_slot = ?, firing_until = ?"
                    " WHERE cron_id = ?",
                    (following, slot, now + claim_s, cron.cron_id),
                )
                cron.next_run_at = following
                claimed.append((cron, slot))
        return claimed

    async def fired(self, cron: CronRecord, slot: float, run: RunRecord | None) -> None:
        """Clear the slot's firing and note the run it created (None: it created none)."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE crons SET firing_slot = NULL, firing_until = NULL"
                " WHERE cron_id = ? AND firing_slot = ?",
                (cron.cron_id, slot),
            )
            if run is not None:
                temporary = cron.thread_id is None and cron.on_run_completed != "keep"
                await conn.execute(
                    "INSERT OR IGNORE INTO cron_runs"
                    " (run_id, cron_id, slot, thread_id, owner, delete_thread, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.run_id,
                        cron.cron_id,
                        slot,
                        run.thread_id,
                        cron.owner,
                        int(temporary),
                        stamp_now(),
                    ),
                )

    async def finished_temporary(self) -> list[tuple[str, str, str]]:
        """(run id, thread id, owner) of stateless runs that finished and keep no thread."""
        marks = ", ".join("?" * len(FINISHED))
        return [
            (str(r[0]), str(r[1]), str(r[2]))
            for r in await fetch_all(
                self._conn,
                "SELECT c.run_id, c.thread_id, c.owner FROM cron_runs c"
                " LEFT JOIN runs r ON r.run_id = c.run_id"
                f" WHERE c.delete_thread = 1 AND (r.status IS NULL OR r.status IN ({marks}))",
                FINISHED,
            )
        ]

    async def prune(self, before: float) -> int:
        """Forget firings recorded before `before` whose thread needs nothing more done."""
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM cron_runs WHERE delete_thread = 0 AND created_at < ?",
                (datetime.fromtimestamp(before, UTC).isoformat(),),
            )
            return int(cursor.rowcount)

    async def thread_deleted(self, run_id: str) -> None:
        """Note that the thread of a stateless run is gone."""
        async with self._transaction() as conn:
            await conn.execute("UPDATE cron_runs SET delete_thread = 0 WHERE run_id = ?", (run_id,))


Fire = Callable[[CronRecord, str], Awaitable[RunRecord]]
DeleteThread = Callable[[str, str], Awaitable[None]]


class CronScheduler:
    """Every `poll_s`, fires the due crons through the run engine and tidies their threads."""

    def __init__(
        self,
        crons: CronStore,
        fire: Fire,
        delete_thread: DeleteThread,
        *,
        poll_s: float,
        claim_s: float,
    ) -> None:
        self.crons = crons
        self._fire = fire
        self._delete_thread = delete_thread
        self._poll_s = poll_s
        self._claim_s = claim_s
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = 0.0

    def start(self) -> None:
        """Start firing."""
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop firing (a slot being fired now is fired again by whoever claims it next)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.crons.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:
                log_failure(log, "cron pass", exc)
            await asyncio.sleep(self._poll_s)

    async def tick(self) -> int:
        """Fire what is due now and delete finished stateless threads; return how many fired."""
        claimed = await self.crons.claim(time.time(), self._claim_s)
        for cron, slot in claimed:
            await self._fire_slot(cron, slot)
        for run_id, thread_id, owner in await self.crons.finished_temporary():
            await self._delete_thread(owner, thread_id)
            await self.crons.thread_deleted(run_id)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            await self.crons.prune(time.time() - FIRINGS_KEPT_S)
        return len(claimed)

    async def _fire_slot(self, cron: CronRecord, slot: float) -> None:
        key = f"cron:{cron.cron_id}:{iso(slot)}"
        run: RunRecord | None = None
        try:
            run = await self._fire(cron, key)
            log.info("cron %s fired run %s (slot %s)", cron.cron_id, run.run_id, iso(slot))
        except TurnError as exc:
            if exc.status == 404 and cron.thread_id is not None:
                # Its thread was deleted: the cron goes with it, as it would with the thread.
                log.warning("cron %s: %s; deleting the cron", cron.cron_id, exc.message)
                await self.crons.delete(cron.cron_id, cron.owner)
            elif exc.status == 410:
                log.info("cron %s: slot %s already ran (its run was deleted)", cron.cron_id, slot)
            else:
                log.warning("cron %s skipped slot %s: %s", cron.cron_id, iso(slot), exc.message)
        except Exception as exc:
            if classify(exc) is not None:
                # Locked or full storage: the claim lapses and the slot fires again, same key.
                log.warning("cron %s: slot %s waits for storage: %s", cron.cron_id, slot, exc)
                return
            log.exception("cron %s could not fire slot %s; skipped", cron.cron_id, iso(slot))
        await self.crons.fired(cron, slot, run)
