"""Opening SQLite connections with the durability settings the whole service shares."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite

if TYPE_CHECKING:
    from tools.database import Connection

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# What the service writes into its data directory; nothing else there is touched.
DATA_FILE_PATTERNS = ("*.sqlite", "*.sqlite-wal", "*.sqlite-shm", "*.sqlite-journal", "keys.json")


def secure_data_dir(path: Path) -> None:
    """Create `path` readable by this user only (0700) and make the service's files in it 0600.

    Raises OSError when the directory cannot be created, changed or written.
    """
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    for pattern in DATA_FILE_PATTERNS:
        for file in path.glob(pattern):
            file.chmod(PRIVATE_FILE_MODE)
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))


def _private_database(path: Path) -> None:
    # SQLite gives -wal and -shm the main file's mode bits: the main file must be 0600 first.
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    # Only a missing file is created here. Closing any descriptor of a file drops every POSIX
    # lock this process holds on it, the shared locks of its open SQLite connections included;
    # another process closing its connection would then think itself the last one and delete
    # the WAL while this process still commits into it, where no other reader looks.
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE))
    except FileExistsError:
        pass
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(PRIVATE_FILE_MODE)


async def open_sqlite(
    path: Path, *, busy_timeout_ms: int, synchronous: str
) -> aiosqlite.Connection:
    """Open `path` in WAL mode with a busy timeout and the chosen `synchronous` level.

    WAL + synchronous=NORMAL keeps every committed transaction across a process kill
    (kill -9): the WAL is written before commit returns; only an OS crash or power
    loss can drop the newest commits, which FULL additionally protects against.
    """
    await asyncio.to_thread(_private_database, path)
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    await conn.execute(f"PRAGMA synchronous={synchronous}")
    await conn.execute("PRAGMA foreign_keys=ON")
    return conn


def now_iso() -> str:
    """Return the current UTC time as an ISO-8601 string with seconds precision."""
    return datetime.now(UTC).isoformat(timespec="seconds")


async def fetch_all(conn: Connection, sql: str, params: Iterable[Any] = ()) -> list[Any]:
    """Run a query and return every row in one step.

    The statement is finished before control returns, so no read snapshot stays open across an
    await: an open one would make this connection's next write fail at once with "database is
    locked" (SQLITE_BUSY_SNAPSHOT, which SQLite does not retry) when another connection commits.
    """
    return list(await conn.execute_fetchall(sql, tuple(params)))


async def fetch_one(conn: Connection, sql: str, params: Iterable[Any] = ()) -> Any:
    """Return the first row of a query, or None (see `fetch_all`)."""
    rows = await fetch_all(conn, sql, params)
    return rows[0] if rows else None
