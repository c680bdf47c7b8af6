"""Wake-ups between replicas on PostgreSQL: `LISTEN/NOTIFY`, payload-free, never the truth.

The runs table and the event log are what a replica reads; a notification only says "look
again now" instead of at the next poll. `taskagent_events`: a run logged events or finished
(followers in other replicas read the log); `taskagent_runs`: a run was queued, cancelled or
finished (claim loops look for work, lease renewals pick up cancellations). A lost
notification, or none at all (SQLite, or a transaction-pooling pgbouncer that cannot LISTEN),
costs only latency: everyone also polls, more often while no listener is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)

EVENTS = "taskagent_events"
RUNS = "taskagent_runs"
RELISTEN_S = 1.0


class Wakeups:
    """Notifications from other replicas, as this process sees them (inert on SQLite)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.listening = False
        self._events = asyncio.Event()
        self._runs = asyncio.Event()
        self._on_runs: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start listening (PostgreSQL only); reconnects by itself after the server restarts."""
        if self.url and self._task is None:
            self._task = asyncio.create_task(self._listen(self.url))

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def on_runs(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever any replica queues, cancels or finishes a run."""
        self._on_runs.append(callback)

    def events_token(self) -> asyncio.Event:
        """Take before reading the log; `wait` on it after: no notification falls between."""
        return self._events

    def runs_token(self) -> asyncio.Event:
        """Take before looking for runs; `wait_runs` on it after: none queued falls between."""
        return self._runs

    async def wait_runs(self, token: asyncio.Event, timeout_s: float) -> None:
        """Return when a replica queued, cancelled or finished a run since `token`, or later."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await token.wait()

    async def wait(self, token: asyncio.Event, poll_s: float, listening_poll_s: float) -> None:
        """Return when a replica logged events since `token` was taken, or after a poll time."""
        timeout = listening_poll_s if self.listening else poll_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await token.wait()

    async def _listen(self, url: str) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {EVENTS}")
                    await conn.execute(f"LISTEN {RUNS}")
                    self.listening = True
                    self._wake_all()  # whatever happened while not listening: look now
                    async for note in conn.notifies():
                        if note.channel == EVENTS:
                            self._wake_events()
                        else:
                            self._wake_runs()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database is down; polls go on
                if self.listening:
                    log.warning("stopped listening for other replicas: %s", exc)
            self.listening = False
            await asyncio.sleep(RELISTEN_S)

    def _wake_events(self) -> None:
        self._events.set()
        self._events = asyncio.Event()

    def _wake_runs(self) -> None:
        self._runs.set()
        self._runs = asyncio.Event()
        for callback in self._on_runs:
            callback()

    def _wake_all(self) -> None:
        self._wake_events()
        self._wake_runs()
