"""Storage that is temporarily unusable — locked, full, failing — told apart from real errors.

SQLite reports another process holding the write lock past `busy_timeout` as "database is
locked", a full disk as "database or disk is full" and failing writes as "disk I/O error".
None of these is the caller's fault or a bug of ours, and each clears up by itself once the
lock is released or space is freed: the client is told to come back (503 + `Retry-After`,
answered by `server.api.storage_errors`), and nothing the database already holds is harmed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Literal

Reason = Literal["busy", "full", "io"]

RETRY_AFTER_S = 2
# The `error` name of the run event a run ends with when storage failed under it.
EVENT_ERROR = "StorageUnavailable"

MESSAGES: dict[Reason, str] = {
    "busy": "The database is busy (locked by another process). Nothing was changed; "
    "try again in a few seconds.",
    "full": "The server's disk is full. Nothing was changed; try again once space is freed.",
    "io": "The server could not write to its disk. Nothing was changed; try again shortly.",
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


def classify(exc: BaseException) -> StorageUnavailable | None:
    """Return why storage is unavailable if `exc` (or what caused it) says so, else None.

    The whole cause/context chain is searched: a failed COMMIT is often followed by a failed
    ROLLBACK ("no transaction is active") that hides the original error.
    """
    for error in _chain(exc):
        if isinstance(error, StorageUnavailable):
            return error
        if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError):
            text = str(error).lower()
            for marker, reason in _MARKERS:
                if marker in text:
                    return StorageUnavailable(reason)
    return None
