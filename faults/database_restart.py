"""PostgreSQL restarted under two replicas, mid-turn: clean 503s, then business as usual.

The same two replicas, threads, turns and client as `faults.shared` (replicas on
PostgreSQL), but what fails is the database: after a random delay into a turn, PostgreSQL is
stopped (fast shutdown: every session cut) and started again after a short outage, while the
replicas keep running. During the outage a client asking for its tasks must get a 503 with
`Retry-After` (never a 500); once the database is back, both replicas must serve again
(how long that takes is recorded), and nobody does anything by hand — the client rejoins the
run it was told about, or resends under the same key, and every turn must end as it would have
without the restart: 0 lost, 0 duplicated, every thread resumable, every index intact
(amcheck), event ids gap-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from langgraph_sdk import get_client

from faults.server import ServerProcess
from faults.shared import MAX_KILL_DELAY_S, SharedDriver, SharedReport, drive
from scripts.local_pg import LocalPostgres

OUTAGE_S = (0.5, 3.0)
RECOVERY_LIMIT_S = 60.0


@dataclass
class RestartReport(SharedReport):
    """The shared counts, plus what clients were answered while the database was down."""

    clean_503: int = 0
    other_answers: int = 0
    # Seconds from PostgreSQL accepting connections again to both replicas answering 200.
    recovery_s: list[float] = field(default_factory=list)


class RestartDriver(SharedDriver):
    """Two replicas on `postgres`; each round restarts the database instead of a replica."""

    def __init__(self, workdir: Path, seed: int, postgres: LocalPostgres) -> None:
        """Two replicas (not started) on a database of `postgres`."""
        super().__init__(workdir, seed, postgres.create_database("restarts"))
        self.postgres = postgres
        self.report: RestartReport = RestartReport(threads=len(self.threads))

    async def round(self, index: int) -> None:
        """One turn, a database restart inside it, the turn settled on the other replica."""
        report = self.report
        turn = self.plan(index)
        first, other = self.servers[index % 2], self.servers[(index + 1) % 2]
        self.server = first
        if turn.thread.client == "sdk" and turn.thread.thread_id is None:
            client = get_client(url=first.url)
            turn.thread.thread_id = (await client.threads.create())["thread_id"]
        sender = asyncio.create_task(self.send(turn))
        await asyncio.sleep(self.rng.uniform(0.0, MAX_KILL_DELAY_S))
        report.mid_turn += int(not sender.done())
        await asyncio.to_thread(self.postgres.stop)
        report.kills += 1
        report.random_kills += 1
        await self._ask_while_down(first)
        await asyncio.sleep(self.rng.uniform(*OUTAGE_S))
        await asyncio.to_thread(self.postgres.start)
        await self._wait_recovered()
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        self.server = other
        await self.settle(turn)
        self.check_integrity(f"after restart {index}")

    async def _wait_recovered(self) -> None:
        """Poll both replicas until each serves a read again; record how long that took."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as http:
            for server in self.servers:
                while time.monotonic() - started < RECOVERY_LIMIT_S:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{server.url}/tasks")).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
                else:
                    self.report.problems.append(
                        f"{server.url} still not serving {RECOVERY_LIMIT_S:g} s after the restart"
                    )
        self.report.recovery_s.append(time.monotonic() - started)

    async def _ask_while_down(self, server: ServerProcess) -> None:
        report = self.report
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            answer = await http.get("/tasks")
        if answer.status_code == 503 and answer.headers.get("retry-after"):
            report.clean_503 += 1
        else:
            report.other_answers += 1
            report.problems.append(
                f"while the database was down GET /tasks answered {answer.status_code}:"
                f" {answer.text[:200]}"
            )


async def run_restarts(
    count: int, workdir: Path, database_dir: Path, seed: int = 6
) -> RestartReport:
    """Run `count` rounds on a PostgreSQL of their own (in `database_dir`); return the counts.

    `database_dir` is a directory of its own: the server runs as the postgres user, who must
    be able to reach it.
    """
    postgres = LocalPostgres(database_dir).start()
    try:
        driver = RestartDriver(workdir, seed, postgres)
        await drive(driver, count)
    finally:
        postgres.stop()
    return driver.report
