"""Versioned schemas: each store's ordered migrations, applied once each at start-up.

Several stores share one SQLite file, so the version is kept per store in `schema_versions`
rather than in the file-wide `PRAGMA user_version`. A migration is a SQL script or a function
of the connection; each runs in its own `BEGIN IMMEDIATE` transaction together with the
version bump, so two processes starting on one data dir apply it exactly once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence

import aiosqlite

from tools.sqlite import fetch_all, fetch_one

Migration = str | Callable[[aiosqlite.Connection], Awaitable[None]]

VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    store TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)
"""


async def migrate(conn: aiosqlite.Connection, store: str, steps: Sequence[Migration]) -> int:
    """Bring `store`'s tables up to `len(steps)`; return the version found before.

    Raises RuntimeError when the file was written by a newer version of the service.
    """
    await conn.execute(VERSIONS)
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
                if isinstance(step, str):
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


async def version_of(conn: aiosqlite.Connection, store: str) -> int:
    """Return the schema version recorded for `store` (0: never migrated)."""
    row = await fetch_one(conn, "SELECT version FROM schema_versions WHERE store = ?", (store,))
    return int(row[0]) if row else 0


async def columns_of(conn: aiosqlite.Connection, table: str) -> set[str]:
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
