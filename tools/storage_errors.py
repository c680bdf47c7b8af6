"""Storage that is temporarily unusable — locked, full, failing — told apart from real errors.

SQLite reports another process holding the write lock past `busy_timeout` as "database is
locked", a full disk as "database or disk is full" and failing writes as "disk I/O error";
PostgreSQL (`DATABASE_URL`) a server that is down or restarting as a connection error (or
the pool waiting in vain for a connection), and two transactions in each other's way as a
serialization failure or a deadlock, either of which it has rolled back. None of these is the
caller's fault or a bug of ours, and each clears up by itself once the lock is released, space
is freed or the server is back: the client is told to come back (503 + `Retry-After`, answered
by `server.api.storage_errors`), and nothing the database already holds is harmed.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import Literal

import psycopg
from psycopg.errors import DeadlockDetected, LockNotAvailable, SerializationFailure
from psycopg_pool import PoolTimeout

Reason = Literal["busy", "full", "io", "down"]

RETRY_AFTER_S = 2
# The `error` name of the run event a run ends with when storage failed under it.
EVENT_ERROR = "StorageUnavailable"

MESSAGES: dict[Reason, str] = {
    "busy": "The database is busy (locked by another process). Nothing was changed; "
    "try again in a few seconds.",
    "full": "The server's disk is full. Nothing was changed; try again once space is freed.",
    "io": "The server could not write to its disk. Nothing was changed; try again shortly.",
    "down": "The database cannot be reached right now (it may be restarting). Nothing was"
    " changed; try again in a few seconds.",
}

_MARKERS: tuple[tuple[str, Reason], ...] = (
    ("database is locked", "busy"),
    ("database table is locked", "busy"),
    ("database is busy", "busy"),
    ("database or disk is full", "full"),
    ("disk i/o error", "io"),
)
_MAX_CHAIN = 16


class StorageUnavailable(Exception):
    """Storage cannot serve the request right now; `reason` says why."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(MESSAGES[reason])
        self.reason: Reason = reason

    @property
    def message(self) -> str:
        """The sentence clients are shown."""
        return MESSAGES[self.reason]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            for inner in current.exceptions:
                yield from _chain(inner)
        current = current.__cause__ or current.__context__


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a background pass that failed: one line when storage is out, a traceback if not.

    An outage (a database restarting, a full disk) is expected and clears up; its
    tracebacks, one per pass of every loop, would bury anything worth a look.
    """
    storage = classify(exc)
    if storage is None:
        logger.error("%s failed", what, exc_info=exc)
    else:
        logger.warning("%s failed: storage unavailable (%s)", what, storage.reason)


def classify(exc: BaseException) -> StorageUnavailable | None:
    """Return why storage is unavailable if `exc` (or what caused it) says so, else None.

    The whole cause/context chain is searched: a failed COMMIT is often followed by a failed
    ROLLBACK ("no transaction is active") that hides the original error.
    """
    for error in _chain(exc):
        if isinstance(error, StorageUnavailable):
            return error
        if isinstance(error, PoolTimeout | psycopg.OperationalError | psycopg.InterfaceError):
            busy = isinstance(error, SerializationFailure | DeadlockDetected | LockNotAvailable)
            return StorageUnavailable("busy" if busy else "down")
        if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError):
            text = str(error).lower()
            for marker, reason in _MARKERS:
                if marker in text:
                    return StorageUnavailable(reason)
    return None


def is_duplicate_key(exc: BaseException) -> bool:
    """Whether `exc` is a unique key the database already holds (on either engine)."""
    return isinstance(exc, sqlite3.IntegrityError | psycopg.errors.UniqueViolation)
