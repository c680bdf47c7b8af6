"""Versioned schemas: each store's ordered migrations, applied once each at start-up.

Several stores share one SQLite file, so the version is kept per store in `schema_versions`
rather than in the file-wide `PRAGMA user_version`. A migration is a SQL script or a function
of the connection; each runs in its own `BEGIN IMMEDIATE` transaction together with the
version bump, so two processes starting on one data dir (or two replicas on one PostgreSQL
database, where `BEGIN IMMEDIATE` takes the store file's advisory lock) apply it exactly once.
A store keeps one list per engine; a step that only upgrades an old SQLite file is an empty
script on PostgreSQL, so a version number means the same tables on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from tools.postgres import PgConnection
from tools.sqlite import fetch_all, fetch_one

if TYPE_CHECKING:
    from tools.database import Connection

Migration = str | Callable[["Connection"], Awaitable[None]]

VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    store TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)
"""


async def migrate(
    conn: Connection,
    store: str,
    steps: Sequence[Migration],
    pg_steps: Sequence[Migration] | None = None,
) -> int:
    """Bring `store`'s tables up to `len(steps)`; return the version found before.

    `pg_steps` are the same versions written for PostgreSQL (used when `conn` is one).
    Raises RuntimeError when the file was written by a newer version of the service.
    """
    postgres = isinstance(conn, PgConnection)
    if postgres:
        if pg_steps is None or (steps and len(pg_steps) != len(steps)):
            raise RuntimeError(f"The {store} tables have no PostgreSQL schema.")
        steps = pg_steps
    await conn.execute("BEGIN IMMEDIATE")  # replicas starting together create it once
    try:
        await conn.execute(VERSIONS)
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
    found = await version_of(conn, store)
    if found > len(steps):
        raise RuntimeError(
            f"The {store} tables are at schema version {found}, newer than this version of"
            f" taskagent knows ({len(steps)}); upgrade taskagent."
        )
    for number, step in enumerate(steps[found:], start=found + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while this one waited for the lock.
            if await version_of(conn, store) < number:
                if isinstance(step, str) and postgres:
                    if step.strip():
                        await conn.execute(step)  # one script; PostgreSQL splits it itself
                elif isinstance(step, str):
                    for statement in _statements(step):
                        await conn.execute(statement)
                else:
                    await step(conn)
                await conn.execute(
                    "INSERT INTO schema_versions (store, version) VALUES (?, ?)"
                    " ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                    (store, number),
                )
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
    return found


async def version_of(conn: Connection, store: str) -> int:
    """Return the schema version recorded for `store` (0: never migrated)."""
    row = await fetch_one(conn, "SELECT version FROM schema_versions WHERE store = ?", (store,))
    return int(row[0]) if row else 0


async def columns_of(conn: Connection, table: str) -> set[str]:
    """Return the names of `table`'s columns (empty when it does not exist)."""
    return {str(row[1]) for row in await fetch_all(conn, f"PRAGMA table_info({table})")}


def _statements(script: str) -> list[str]:
    # executescript() would commit the open transaction; statements run one by one instead.
    # A trigger's body holds semicolons: a statement ends where SQLite says it is complete.
    statements, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip())
            pending = ""
    return statements
