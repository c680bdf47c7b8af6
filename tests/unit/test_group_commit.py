"""Group commit on a real SQLite file: concurrent appends share statements, lose nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiosqlite
import pytest

from server.runs.group_commit import GroupCommit
from tools.sqlite import fetch_all, open_sqlite

Row = tuple[str, int]


async def open_log(path: Path) -> tuple[aiosqlite.Connection, list[str]]:
    conn = await open_sqlite(path, busy_timeout_ms=1000, synchronous="NORMAL")
    await conn.execute("CREATE TABLE log (run_id TEXT, seq INTEGER, PRIMARY KEY (run_id, seq))")
    statements: list[str] = []
    await conn.set_trace_callback(statements.append)
    return conn, statements


def writer(conn: aiosqlite.Connection):
    async def write(rows: Sequence[Row]) -> None:
        await conn.execute_fetchall(
            "INSERT INTO log (run_id, seq) VALUES " + ", ".join(["(?, ?)"] * len(rows)),
            [value for row in rows for value in row],
        )

    return write


async def test_many_runs_appending_at_once_share_statements_and_keep_every_row(tmp_path):
    conn, statements = await open_log(tmp_path / "log.sqlite")
    try:
        log: GroupCommit[Row] = GroupCommit(writer(conn))

        async def run(run_id: str) -> None:
            for seq in range(1, 11):
                await log.append([(run_id, seq)])
                # Returned means committed: another connection sees the row.
                with sqlite3.connect(tmp_path / "log.sqlite") as other:
                    assert other.execute(
                        "SELECT 1 FROM log WHERE run_id = ? AND seq = ?", (run_id, seq)
                    ).fetchone()

        await asyncio.gather(*(run(f"run-{n}") for n in range(40)))
        rows = await fetch_all(conn, "SELECT run_id, COUNT(*), MAX(seq) FROM log GROUP BY run_id")
        assert sorted(rows) == sorted((f"run-{n}", 10, 10) for n in range(40))
        inserts = [s for s in statements if s.startswith("INSERT")]
        # 400 appends; one statement each before. Batches form while a write is in flight.
        assert len(inserts) < 400 / 4, len(inserts)
    finally:
        await conn.close()


async def test_a_failed_write_fails_every_append_in_its_batch_and_not_the_next(tmp_path):
    conn, _ = await open_log(tmp_path / "log.sqlite")
    try:
        await conn.execute("INSERT INTO log VALUES ('taken', 1)")
        log: GroupCommit[Row] = GroupCommit(writer(conn))
        outcomes = await asyncio.gather(
            log.append([("a", 1)]),
            log.append([("taken", 1)]),  # violates the key: the whole statement fails
            return_exceptions=True,
        )
        assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
        await log.append([("b", 1)])
        assert await fetch_all(conn, "SELECT run_id FROM log ORDER BY run_id") == [
            ("b",),
            ("taken",),
        ]
    finally:
        await conn.close()


async def test_a_cancelled_append_does_not_cancel_the_others_in_its_batch(tmp_path):
    conn, _ = await open_log(tmp_path / "log.sqlite")
    try:
        log: GroupCommit[Row] = GroupCommit(writer(conn))
        first = asyncio.create_task(log.append([("a", 1)]))
        second = asyncio.create_task(log.append([("b", 1)]))
        await asyncio.sleep(0)
        first.cancel()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        assert sorted(await fetch_all(conn, "SELECT run_id FROM log")) == [("a",), ("b",)]
    finally:
        await conn.close()
