"""The task store: one façade over the stores in tasks.sqlite, as the nodes and server use them.

Each store is its own module (`tools.task_store` tasks, `tools.tool_results` exactly-once
results and shown approvals, `tools.archive` trimmed messages, `tools.audit`, `tools.usage`)
with its own migrations; this module opens the file, migrates every store, and decides
which connection each call uses. Changes go through one writer connection, one transaction
at a time; reads go through a separate read-only connection, so a read never sees a change
whose transaction has not committed (WAL gives each read the last committed state).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from graph.redaction import Redactor
from tools import archive, task_store, tool_results, usage
from tools import audit as audit_module
from tools.audit import AGGREGATED_KINDS, AuditRecord, completed
from tools.database import Connection, open_database
from tools.errors import ToolError
from tools.migrations import Migration, migrate
from tools.sqlite import fetch_one
from tools.task_store import TaskFilter
from tools.usage import Totals

Mutation = Callable[[Connection], Awaitable[dict[str, Any]]]

# Audit rows one retention transaction deletes at most: no pass holds the writer for long.
AUDIT_PRUNE_BATCH = 1000

STORES: tuple[tuple[str, list[Migration], list[Migration]], ...] = (
    ("tasks", task_store.MIGRATIONS, task_store.PG_MIGRATIONS),
    ("tool_results", tool_results.MIGRATIONS, tool_results.PG_MIGRATIONS),
    ("archive", archive.MIGRATIONS, archive.PG_MIGRATIONS),
    ("audit", audit_module.MIGRATIONS, audit_module.PG_MIGRATIONS),
    ("usage", usage.MIGRATIONS, usage.PG_MIGRATIONS),
)
"""The stores kept in tasks.sqlite besides the thread index, in the order they migrate."""


class TaskStore:
    """Tasks per owner; every mutation is keyed by its run's identity and applied at most once."""

    def __init__(
        self,
        writer: Connection,
        reader: Connection,
        redactor: Redactor | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        # Without the process's redactor, audit rows lose key-shaped values only.
        self.redactor = redactor or Redactor()
        # One aiosqlite connection runs statements in order, but a transaction spans several
        # awaits: the lock keeps two coroutines' transactions from interleaving.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        synchronous: str = "NORMAL",
        redactor: Redactor | None = None,
        database_url: str | None = None,
    ) -> TaskStore:
        """Open (and create or migrate if needed) the store at `path`; `redactor` scrubs audit.

        Raises RuntimeError when a store in the file is at a newer schema than this code knows.
        """
        opening = partial(
            open_database,
            path,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=synchronous,
            database_url=database_url,
        )
        writer = await opening()
        try:
            for name, steps, pg_steps in STORES:
                await migrate(writer, name, steps, pg_steps)
            reader = await opening()
        except BaseException:
            await writer.close()
            raise
        await reader.execute("PRAGMA query_only = ON")
        return cls(writer, reader, redactor)

    async def close(self) -> None:
        """Close both connections."""
        await self._reader.close()
        await self._writer.close()

    async def ping(self) -> bool:
        """Return True when the database answers a trivial query."""
        return (await fetch_one(self._reader, "SELECT 1")) is not None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """Yield the writer inside one IMMEDIATE transaction: committed whole, or not at all."""
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    # --- approvals ---------------------------------------------------------------------

    async def shown_approvals(self, step_key: str) -> dict[int, str]:
        """Return the approval ids a step asked about, by the position of its pause."""
        return await tool_results.shown_approvals(self._reader, step_key)

    async def record_shown(self, step_key: str, position: int, approval_id: str) -> None:
        """Remember the question a step is about to pause on (kept if already recorded)."""
        async with self._lock:
            await tool_results.record_shown(self._writer, step_key, position, approval_id)

    # --- idempotency -------------------------------------------------------------------

    async def stored_result(self, key: str) -> dict[str, Any] | None:
        """Return the recorded result of the tool call keyed `key`, if it already ran."""
        return await tool_results.stored_result(self._reader, key)

    async def apply_once(
        self,
        key: str,
        owner: str,
        tool: str,
        arguments: dict[str, Any],
        mutation: Mutation,
        audit: AuditRecord | None = None,
        *,
        call_id: str = "",
        thread_id: str = "",
    ) -> dict[str, Any]:
        """Run `mutation` and record its result in one transaction, unless `key` already ran.

        `key` identifies the call within its run (see `tools.tool_results.call_key`);
        `call_id` is the model's own id, kept for the record. The side effect, its result and
        its audit row commit together, so after a crash a call either happened (and replays
        its stored result) or did not happen at all, and executed calls always equal audit rows.
        """
        async with self._transaction() as conn:
            # Checked again inside the transaction: another process may have just run it.
            stored = await tool_results.stored_result(conn, key)
            if stored is not None:
                return stored
            started = time.perf_counter()
            try:
                result = await mutation(conn)
            except ToolError as exc:
                result = exc.result()
            await tool_results.record_result(
                conn,
                key,
                call_id=call_id,
                thread_id=thread_id,
                owner=owner,
                tool=tool,
                arguments=arguments,
                result=result,
            )
            if audit is not None:
                record = completed(audit, result, time.perf_counter() - started)
                await audit_module.insert_audit(conn, record, self.redactor)
            return result

    # --- audit ---------------------------------------------------------------------------

    async def audit(self, record: AuditRecord) -> None:
        """Append an audit row on its own (failed logins and refusals count per window)."""
        if record.kind in AGGREGATED_KINDS:
            # The window's row is found and counted in one transaction: two processes
            # counting at once must not both start a row.
            async with self._transaction() as conn:
                await audit_module.count_audit(conn, record, self.redactor)
        else:
            async with self._lock:
                await audit_module.insert_audit(self._writer, record, self.redactor)

    async def login_failed(self, path: str, client: str, peer: str | None = None) -> None:
        """Audit a missing or wrong key, one row per client a minute (`peer`: socket address)."""
        detail = {"path": path, "client": client}
        if peer is not None:
            detail["peer"] = peer
        await self.audit(AuditRecord("login_failed", user="?", success=False, detail=detail))

    async def prune_audit(self, older_than: timedelta, batch: int = AUDIT_PRUNE_BATCH) -> int:
        """Delete the audit rows older than `older_than`; return how many went.

        The horizon moves first (the database refuses to delete anything younger), then the
        rows go `batch` at a time, each batch its own short transaction.
        """
        cutoff = (datetime.now(UTC) - older_than).isoformat(timespec="seconds")
        async with self._transaction() as conn:
            await audit_module.advance_horizon(conn, cutoff)
        removed = 0
        while True:
            async with self._transaction() as conn:
                deleted = await audit_module.delete_older(conn, cutoff, batch)
            removed += deleted
            if deleted < batch:
                return removed

    async def audit_rows(self, **filters: Any) -> list[dict[str, Any]]:
        """Return audit rows, newest first (see `tools.audit.query_audit` for the filters)."""
        rows: list[dict[str, Any]] = await audit_module.query_audit(self._reader, **filters)
        return rows

    # --- usage ---------------------------------------------------------------------------

    async def record_usage(self, **spent: Any) -> None:
        """Append one model call's usage (see `tools.usage.record_usage`)."""
        async with self._lock:
            await usage.record_usage(self._writer, **spent)

    async def usage_totals(self, user: str, thread_id: str) -> Totals:
        """Return the thread's and the user's spending so far."""
        return await usage.totals(self._reader, user, thread_id)

    async def run_tokens(self, run_id: str) -> int:
        """Return the tokens one run used."""
        return await usage.run_tokens(self._reader, run_id)

    # --- tasks ---------------------------------------------------------------------------

    async def get(self, owner: str | None, task_id: str) -> dict[str, Any] | None:
        """Return one task of `owner` (any owner when None), or None."""
        return await task_store.fetch_task(self._reader, owner, task_id)

    async def owned(self, scope: str | None, task_id: str) -> tuple[dict[str, Any], str] | None:
        """Return one task within `scope` (any owner when None) and whose it is, or None."""
        return await task_store.owned_task(self._reader, scope, task_id)

    async def owners(self, task_ids: list[str]) -> dict[str, str]:
        """Return the owner of each of `task_ids` that exists."""
        return await task_store.owners_of(self._reader, task_ids)

    async def find(
        self, owner: str | None, filters: TaskFilter | None = None, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Return `owner`'s tasks (everyone's when None) matching `filters`, soonest due first."""
        return await task_store.find_tasks(self._reader, owner, filters or TaskFilter(), limit)

    async def count_matching(self, owner: str | None, filters: TaskFilter | None = None) -> int:
        """Return how many tasks `find` would return with no limit."""
        return await task_store.count_tasks(self._reader, owner, filters)

    async def summary(self, owner: str, today: date) -> dict[str, Any]:
        """Return counts by status and priority, overdue tasks and tasks due this week."""
        tasks = await task_store.find_tasks(self._reader, owner, TaskFilter(), 100_000)
        return task_store.summarize_tasks(tasks, today)

    async def count(self) -> int:
        """Return the number of tasks of all owners."""
        return await task_store.count_tasks(self._reader, None)

    # --- message archive -----------------------------------------------------------------

    async def archive_messages(self, thread_id: str, messages: list[tuple[str, str]]) -> None:
        """Append (message_id, json) pairs to `thread_id`'s archive; repeats are ignored."""
        async with self._transaction() as conn:
            await archive.append_messages(conn, thread_id, messages)

    async def delete_archive(self, thread_id: str) -> None:
        """Forget a thread's archived messages."""
        async with self._lock:
            await archive.delete_messages(self._writer, thread_id)

    async def archived_messages(self, thread_id: str) -> list[str]:
        """Return the archived message JSON documents of `thread_id`, oldest first."""
        return await archive.thread_messages(self._reader, thread_id)
