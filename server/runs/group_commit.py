"""Group commit: rows that many writers append at about the same time go to disk together.

Every run appends its streamed events to the one event log, and each append used to be its
own statement under the store's write lock: with 200 paced sessions streaming tokens, runs
queued on that lock for about 50 ms per turn, since a lock is handed on only after its
holder has been resumed (docs/BENCHMARKS.md, the wall-clock view). Here the first writer
starts a flush and the others join the batch that is forming; each writer returns once
the statement holding its rows has committed, so "durable before anyone sees it" still holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Row = TypeVar("Row")


class GroupCommit(Generic[Row]):
    """Batches concurrent `append` calls into calls of `write` (one flusher at a time)."""

    def __init__(self, write: Callable[[Sequence[Row]], Awaitable[None]]) -> None:
        """Write each batch with `write`, which commits it (or raises)."""
        self._write = write
        self._rows: list[Row] = []
        self._committed: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, rows: Sequence[Row]) -> None:
        """Return once `rows` are committed; raise what the write of their batch raised."""
        if not rows:
            return
        self._rows.extend(rows)
        if self._committed is None:
            self._committed = asyncio.get_running_loop().create_future()
        committed = self._committed
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        # The flush belongs to every writer in the batch: one cancelled caller must not
        # cancel the others' write.
        await asyncio.shield(committed)

    async def _flush(self) -> None:
        try:
            while self._rows:
                batch, self._rows = self._rows, []
                committed, self._committed = self._committed, None
                assert committed is not None
                try:
                    await self._write(batch)
                except BaseException as exc:
                    if not committed.done():
                        committed.set_exception(exc)
                        # Mark it retrieved: a batch whose writers were all cancelled would
                        # otherwise log "exception was never retrieved".
                        committed.exception()
                    if not isinstance(exc, Exception):
                        raise
                else:
                    if not committed.done():
                        committed.set_result(None)
        finally:
            self._flusher = None
