"""A run's live event stream in its process: each event is logged first, then delivered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from pydantic_core import to_jsonable_python

from graph import metrics
from graph.redaction import Redactor
from server.runs.event_redaction import EventRedactor
from server.runs.store import RunEvent, RunStore
from tools.storage_errors import classify, is_duplicate_key

log = logging.getLogger("server.runs.engine")


class RunChannel:
    """A run's live event stream: logged first, then delivered to every subscriber."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        next_seq: int,
        kind: str = "chat",
        *,
        redactor: Redactor,
    ) -> None:
        self.run_id = run_id
        self.kind = kind
        self.accepted_at = time.monotonic()
        self.first_token_at: float | None = None
        self.events: list[RunEvent] = []
        self.done = False
        # Set when the log cannot be written: subscribers then end with an error, not a hang.
        self.failure: str | None = None
        # Set when the run was taken over by another process: its log is theirs to write.
        self.abandoned = False
        self._store = store
        self._next_seq = next_seq
        self._pending: list[RunEvent] = []
        self._redaction = EventRedactor(redactor)
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop())

    def publish(self, event: str, data: Any) -> None:
        """Queue an event, redacted; it reaches subscribers once it is on disk.

        This is the one door to the log and the clients, so secrets and system-prompt echoes
        are removed here; streamed text keeps a short tail back until its message ends.
        """
        if self.failure is not None:
            return
        if self.first_token_at is None and metrics.is_first_token(event, data):
            self.first_token_at = time.monotonic()
            metrics.TIME_TO_FIRST_TOKEN.labels(self.kind).observe(
                self.first_token_at - self.accepted_at
            )
        self._queue(self._redaction.events(event, to_jsonable_python(data, fallback=str)))

    def _queue(self, events: list[tuple[str, Any]]) -> None:
        for name, payload in events:
            self._pending.append(RunEvent(self._next_seq, name, json.dumps(payload)))
            self._next_seq += 1
        self._wake.set()

    async def close(self) -> None:
        """Write what is queued (and any held tail), mark the stream finished, stop the writer."""
        if self.failure is None:
            self._queue(self._redaction.flush())
        self._closing = True
        self._wake.set()
        await self._writer

    async def abandon(self) -> None:
        """Stop without writing what is queued; subscribers go on reading the log."""
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        async with self._changed:
            self.abandoned = self.done = True
            self._changed.notify_all()

    async def _write_loop(self) -> None:
        # Events that arrive while a batch is being written go out together in the next one.
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await self._store.append(self.run_id, batch)
                except Exception as exc:
                    if is_duplicate_key(exc):
                        # This process lost its lease (stalled, or cut off from the database)
                        # and another took the run over and logged these ids first: the log
                        # holds the run as that one runs it, and this attempt stops here.
                        log.warning(
                            "run %s: event %d is already logged by the process that took the"
                            " run over; this attempt stops",
                            self.run_id,
                            batch[0].seq,
                        )
                    else:
                        log.exception("could not log events of run %s", self.run_id)
                    storage = classify(exc)
                    async with self._changed:
                        self.failure = "The run's event log could not be written. " + (
                            storage.message if storage else "See the server log."
                        )
                        self.done = True
                        self._changed.notify_all()
                    return
                async with self._changed:
                    self.events.extend(batch)
                    self._changed.notify_all()
            if self._closing and not self._pending:
                async with self._changed:
                    self.done = True
                    self._changed.notify_all()
                return

    async def wait_past(self, seq: int) -> None:
        """Wait until an event after `seq` is delivered or the stream is done."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.done or (bool(self.events) and self.events[-1].seq > seq)
            )

    def delivered_after(self, seq: int) -> list[RunEvent]:
        """Return the delivered events after `seq`."""
        if not self.events:
            return []
        # Sequence numbers are consecutive, so the position is arithmetic.
        return self.events[max(0, seq - self.events[0].seq + 1) :]
