"""Where a store's tables live: a SQLite file in the data dir, or PostgreSQL (`DATABASE_URL`).

Stores open their connection here and stay engine-agnostic; each keeps its table
definitions for both engines. With PostgreSQL, every store of a process shares one pool
(several pools per replica exhaust the server's connections), opened on first use and
closed when the last store using it closes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from psycopg_pool import AsyncConnectionPool

from tools.migrations import Migration, migrate
from tools.postgres import PgConnection, open_pool
from tools.sqlite import open_sqlite

Connection = aiosqlite.Connection | PgConnection
"""What a store holds: an aiosqlite connection, or its PostgreSQL counterpart."""

POOL_MAX_SIZE = 20

# SQLite's JSON functions as the stores use them (see tools.postgres), for PostgreSQL.
PG_COMPAT = """
CREATE OR REPLACE FUNCTION sqlite_json_value(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN v #>> '{}'
        WHEN 'null' THEN NULL
        WHEN 'boolean' THEN CASE WHEN v = 'true'::jsonb THEN '1' ELSE '0' END
        ELSE v::text END
$$;
CREATE OR REPLACE FUNCTION sqlite_json_extract(doc text, path text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT sqlite_json_value(doc::jsonb #> CASE WHEN path = '$' THEN '{}'::text[]
        ELSE string_to_array(substr(path, 3), '.') END)
$$;
CREATE OR REPLACE FUNCTION sqlite_json_each(doc text) RETURNS TABLE (key text, value text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT e.key, sqlite_json_value(e.value) FROM jsonb_each(CASE
        WHEN jsonb_typeof(doc::jsonb) = 'object' THEN doc::jsonb ELSE '{}'::jsonb END) AS e
    UNION ALL
    SELECT (e.n - 1)::text, sqlite_json_value(e.value) FROM jsonb_array_elements(CASE
        WHEN jsonb_typeof(doc::jsonb) = 'array' THEN doc::jsonb ELSE '[]'::jsonb END)
        WITH ORDINALITY AS e (value, n)
$$;
CREATE OR REPLACE FUNCTION sqlite_json_merge(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
    v jsonb;
BEGIN
    IF jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        target := '{}'::jsonb;
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(v) = 'null' THEN
            target := target - k;
        ELSE
            target := jsonb_set(target, ARRAY[k], sqlite_json_merge(target -> k, v));
        END IF;
    END LOOP;
    RETURN target;
END
$$;
CREATE OR REPLACE FUNCTION sqlite_json_patch(target text, patch text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT sqlite_json_merge(target::jsonb, patch::jsonb)::text
$$;
CREATE OR REPLACE FUNCTION instr(haystack text, needle text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT strpos(haystack, needle)
$$;
"""

_pools: dict[tuple[str, asyncio.AbstractEventLoop], tuple[AsyncConnectionPool[Any], int]] = {}
# One per event loop: an asyncio lock belongs to the loop it was first used on.
# Weak: a test suite runs many event loops, each forgotten with its lock.
_pools_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def open_database(
    path: Path, *, busy_timeout_ms: int, synchronous: str, database_url: str | None = None
) -> Connection:
    """Open the store kept in `path` (SQLite), or in PostgreSQL when `database_url` is set.

    On PostgreSQL the file's name becomes the name of the lock its writers take turns on.
    """
    if not database_url:
        return await open_sqlite(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    pool = await acquire_pool(database_url)
    conn = PgConnection(pool, path.stem, on_close=lambda: release_pool(database_url))
    try:
        await _ensure_compat(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def open_migrated(
    path: Path,
    store: str,
    steps: Sequence[Migration],
    pg_steps: Sequence[Migration],
    *,
    busy_timeout_ms: int,
    synchronous: str,
    database_url: str | None = None,
) -> Connection:
    """Open `store`'s database (`open_database`) and bring its tables up to date."""
    conn = await open_database(
        path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous, database_url=database_url
    )
    try:
        await migrate(conn, store, steps, pg_steps)
    except BaseException:
        await conn.close()  # an open SQLite connection's thread would keep the process alive
        raise
    return conn


def is_postgres(conn: Connection) -> bool:
    """Whether `conn` is PostgreSQL (for the few statements written per engine)."""
    return isinstance(conn, PgConnection)


async def acquire_pool(url: str, max_size: int = POOL_MAX_SIZE) -> AsyncConnectionPool[Any]:
    """Return this process's pool for `url` (on this event loop), opening it on first use.

    The first use sizes the pool (`max_size` connections); later ones share it as it is.
    """
    key = (url, asyncio.get_running_loop())
    async with _pools_locks.setdefault(key[1], asyncio.Lock()):
        found = _pools.get(key)
        if found is None:
            found = (await open_pool(url, max_size=max_size), 0)
        _pools[key] = (found[0], found[1] + 1)
        return found[0]


async def release_pool(url: str) -> None:
    """Let go of one use of the pool; the last one closes it."""
    key = (url, asyncio.get_running_loop())
    async with _pools_locks.setdefault(key[1], asyncio.Lock()):
        found = _pools.get(key)
        if found is None:
            return
        pool, users = found
        if users > 1:
            _pools[key] = (pool, users - 1)
            return
        del _pools[key]
    await pool.close()


async def _ensure_compat(conn: PgConnection) -> None:
    await migrate(conn, "pg_compat", [], [PG_COMPAT])
