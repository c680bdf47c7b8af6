"""Audit retention on both engines: old rows go, the rest of the trail stays append-only.

Each test runs on SQLite and on a real PostgreSQL (Debian's server in a scratch dir). The
verdicts come from the database, read and written as an operator would with a plain
connection: which rows are left, and which statements the database itself refuses.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.runs.audit_retention import prune_audit_trail
from server.runs.store import RunStore
from tools import audit
from tools.audit import AuditRecord
from tools.database import open_database
from tools.migrations import migrate
from tools.store import TaskStore

REFUSED = (sqlite3.DatabaseError, psycopg.Error)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite files in the test's dir, or the URL of a new PostgreSQL database."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


class Trail:
    """One replica's stores on the test's database, and an operator's connection beside them."""

    def __init__(self, data: Path, url: str | None, tasks: TaskStore, runs: RunStore) -> None:
        self.data, self.url, self.tasks, self.runs = data, url, tasks, runs

    @classmethod
    async def open(cls, data: Path, url: str | None) -> Trail:
        tasks = await TaskStore.open(data / "tasks.sqlite", database_url=url)
        runs = await RunStore.open(
            data / "runs.sqlite", busy_timeout_ms=5000, synchronous="NORMAL", database_url=url
        )
        return cls(data, url, tasks, runs)

    async def close(self) -> None:
        await self.tasks.close()
        await self.runs.close()

    async def add(self, tool: str, age: timedelta) -> None:
        """Append a row as the service does, stamped `age` ago."""
        ts = (datetime.now(UTC) - age).isoformat(timespec="seconds")
        await self.tasks.audit(AuditRecord("tool", user="alice", tool=tool, ts=ts))

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run one statement on a connection of its own, committed (raises what it raises)."""
        if self.url is None:
            with closing(sqlite3.connect(self.data / "tasks.sqlite", isolation_level=None)) as db:
                return db.execute(statement).fetchall()
        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(statement.replace("user", '"user"'))
            return cur.fetchall() if cur.description else []

    def tools(self) -> list[str]:
        return [str(t) for (t,) in self.sql("SELECT tool FROM audit ORDER BY id")]

    def horizon(self) -> str:
        return str(self.sql("SELECT horizon FROM audit_horizon")[0][0])


@pytest.fixture
async def trail(tmp_path: Path, database_url: str | None) -> AsyncIterator[Trail]:
    opened = await Trail.open(tmp_path, database_url)
    yield opened
    await opened.close()


DAY = timedelta(days=1)


async def test_a_pass_removes_the_rows_older_than_the_retention_and_keeps_the_rest(
    trail: Trail,
) -> None:
    for tool, age in (("a", 400 * DAY), ("b", 31 * DAY), ("c", 29 * DAY), ("d", timedelta(0))):
        await trail.add(tool, age)

    assert await prune_audit_trail(trail.runs, trail.tasks, 30) == 2

    assert trail.tools() == ["c", "d"]
    horizon = datetime.fromisoformat(trail.horizon())
    assert abs(horizon - (datetime.now(UTC) - 30 * DAY)) < timedelta(minutes=1)
    assert await prune_audit_trail(trail.runs, trail.tasks, 30) == 0, "nothing more to do"


async def test_a_long_backlog_goes_in_batches(trail: Trail) -> None:
    for n in range(7):
        await trail.add(f"old{n}", (100 + n) * DAY)
    await trail.add("new", DAY)

    assert await trail.tasks.prune_audit(30 * DAY, batch=3) == 7

    assert trail.tools() == ["new"]


async def test_the_database_refuses_deleting_younger_rows_and_any_update(trail: Trail) -> None:
    await trail.add("young", DAY)
    await trail.add("old", 60 * DAY)
    await prune_audit_trail(trail.runs, trail.tasks, 30)  # "old" goes; the horizon moves
    await trail.add("late", 90 * DAY)  # written past the horizon after the pass

    for statement in (
        "DELETE FROM audit WHERE tool = 'young'",
        "DELETE FROM audit",
        "UPDATE audit SET user = 'mallory' WHERE tool = 'young'",
        "UPDATE audit SET result_summary = 'edited' WHERE tool = 'late'",
        "UPDATE audit SET ts = '2000-01-01T00:00:00+00:00' WHERE tool = 'young'",
    ):
        with pytest.raises(REFUSED, match="append-only"):
            trail.sql(statement)
    # The horizon cannot be moved back, forward by hand past the pass's check, or removed.
    for statement in (
        "UPDATE audit_horizon SET horizon = ''",
        "DELETE FROM audit_horizon",
        "INSERT INTO audit_horizon (id, horizon) VALUES (1, '9999')",
        "INSERT INTO audit_horizon (id, horizon) VALUES (2, '9999')",
    ):
        with pytest.raises(REFUSED):
            trail.sql(statement)
    if trail.url is not None:
        for table in ("audit", "audit_horizon"):
            with pytest.raises(psycopg.Error, match="append-only|moves forward"):
                trail.sql(f"TRUNCATE {table}")
    if trail.url is None:
        with pytest.raises(sqlite3.DatabaseError, match="moves forward"):
            trail.sql("INSERT OR REPLACE INTO audit_horizon (id, horizon) VALUES (1, '9999')")

    assert trail.tools() == ["young", "late"]
    # What the rule does allow: a row older than the horizon may go.
    trail.sql("DELETE FROM audit WHERE tool = 'late'")
    assert trail.tools() == ["young"]


async def test_without_retention_nothing_is_ever_removed(trail: Trail) -> None:
    await trail.add("ancient", 3650 * DAY)
    await trail.add("today", timedelta(0))

    assert await prune_audit_trail(trail.runs, trail.tasks, 0) == 0

    assert trail.tools() == ["ancient", "today"]
    assert trail.horizon() == ""
    with pytest.raises(REFUSED, match="append-only"):
        trail.sql("DELETE FROM audit WHERE tool = 'ancient'")


@pytest.mark.integration
async def test_two_replicas_passes_at_once_remove_each_row_once(
    tmp_path: Path, pg_url: str
) -> None:
    first = await Trail.open(tmp_path / "replica0", pg_url)
    second = await Trail.open(tmp_path / "replica1", pg_url)
    try:
        for n in range(25):
            await first.add(f"old{n}", 60 * DAY)
        await first.add("new", DAY)

        async with first.runs.one_replica("audit-retention"):
            assert await prune_audit_trail(second.runs, second.tasks, 30) == 0, "held: skipped"
        assert len(first.tools()) == 26

        removed = await asyncio.gather(
            prune_audit_trail(first.runs, first.tasks, 30),
            prune_audit_trail(second.runs, second.tasks, 30),
        )

        assert sum(removed) == 25 and first.tools() == ["new"]
    finally:
        await first.close()
        await second.close()


async def test_a_trail_from_before_retention_keeps_its_rows_and_its_guard(
    tmp_path: Path, database_url: str | None
) -> None:
    # The audit tables as the previous release left them (schema version 2), with rows.
    conn = await open_database(
        tmp_path / "tasks.sqlite",
        busy_timeout_ms=5000,
        synchronous="NORMAL",
        database_url=database_url,
    )
    try:
        await migrate(conn, "audit", audit.MIGRATIONS[:2], audit.PG_MIGRATIONS[:2])
        for tool, ts in (("ancient", "2015-01-01T00:00:00+00:00"), ("older", "2016-01-01")):
            await conn.execute(
                "INSERT INTO audit (ts, kind, user, tool) VALUES (?, 'tool', 'root', ?)",
                (ts, tool),
            )
    finally:
        await conn.close()

    trail = await Trail.open(tmp_path, database_url)
    try:
        assert trail.sql("SELECT version FROM schema_versions WHERE store = 'audit'") == [(3,)]
        assert trail.tools() == ["ancient", "older"]
        for statement in (
            "DELETE FROM audit WHERE tool = 'ancient'",
            "UPDATE audit SET user = 'mallory' WHERE tool = 'older'",
        ):
            with pytest.raises(REFUSED, match="append-only"):
                trail.sql(statement)
        await trail.add("today", timedelta(0))

        assert await prune_audit_trail(trail.runs, trail.tasks, 365) == 2

        assert trail.tools() == ["today"]
    finally:
        await trail.close()
