"""Leases on runs held by one process: claiming them, renewing them, handing them back.

A lease owner is "host:pid:boot-id". The engine asks here for runs to execute and learns here
which of its runs it still holds (and which other processes asked to stop); the decisions
themselves are single transactions in `RunStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator

from graph.settings import Settings
from server.runs.store import RunRecord, RunStore
from tools.storage_errors import classify

log = logging.getLogger("server.runs.engine")

# Runs one claim takes at most; the next pass takes more.
CLAIM_BATCH = 16


def process_identity() -> str:
    """Name this process as a lease owner: host, pid and a boot id (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Leases:
    """Claims runs for this process and keeps its leases alive."""

    def __init__(self, store: RunStore, settings: Settings, *, serves_others: bool) -> None:
        self.identity = process_identity()
        self._store = store
        self._settings = settings
        # A server executes whatever is queued; a CLI or MCP session only the runs it admitted
        # (and, like everyone, runs whose process died), so `chat -m` never picks up a
        # server's queue. Ids of its own runs still waiting to be claimed:
        self._serves_others = serves_others
        self.queued_here: set[str] = set()
        self._wake = asyncio.Event()
        self._renew_now = asyncio.Event()
        # When the last successful renewal was sent (monotonic): every lease held then runs
        # at least until this plus the lease time, whoever's clock reads it.
        self.confirmed_at = time.monotonic()
        self.claim_sent = self.confirmed_at

    def wake(self) -> None:
        """Claim and renew now, not at the next poll: a run ended, was queued or cancelled."""
        self._wake.set()
        self._renew_now.set()

    async def claim(self, limit: int = CLAIM_BATCH) -> list[RunRecord]:
        """Lease up to `limit` runs this process may take."""
        pending_of = None if self._serves_others else set(self.queued_here)
        # The leases it takes run at least until this plus the lease time.
        self.claim_sent = time.monotonic()
        claimed = await self._store.claim(
            self.identity, self._settings.run_lease_s, limit, pending_of=pending_of
        )
        self.queued_here.difference_update(run.run_id for run in claimed)
        return claimed

    async def claimed(self) -> AsyncIterator[list[RunRecord]]:
        """Yield what each claim pass took: at each wake-up, else every poll interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.run_poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                runs = await self.claim()
            except Exception as exc:
                if classify(exc) is None:
                    log.exception("claiming runs failed")
                continue
            if len(runs) == CLAIM_BATCH:
                self._wake.set()
            yield runs

    async def renewals(self) -> AsyncIterator[dict[str, str | None]]:
        """Renew every lease held, a third of a lease apart; yield {run_id: cancel asked}."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.run_lease_s / 3):
                    await self._renew_now.wait()
            self._renew_now.clear()
            sent = time.monotonic()
            try:
                held = await self._store.renew(self.identity, self._settings.run_lease_s)
            except Exception as exc:
                if classify(exc) is None:
                    log.exception("renewing leases failed")
                continue
            self.confirmed_at = sent
            yield held

    def unconfirmed_for(self, claimed_at: float) -> float:
        """Seconds a lease taken at `claimed_at` has gone without reaching the database."""
        return time.monotonic() - max(self.confirmed_at, claimed_at)

    async def release_dead_neighbours(self) -> None:
        """Hand back the leases of processes on this host that no longer exist.

        Their runs need not wait for the expiry: a restart after kill -9 resumes them at once.
        """
        host = socket.gethostname()
        for owner in await self._store.lease_owners():
            name, _, rest = owner.partition(":")
            pid = rest.partition(":")[0]
            if name == host and pid.isdigit() and int(pid) != os.getpid() and _gone(int(pid)):
                await self._store.release(owner)

    async def release(self) -> None:
        """Hand back every lease this process holds, so another one resumes its runs now."""
        await self._store.release(self.identity)


def _gone(pid: int) -> bool:
    """Whether no live process has this pid (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False
