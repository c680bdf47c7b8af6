"""Two servers on one data dir: SIGKILL the one running a turn; the other must finish it, once.

Two `python -m server.cli serve` processes (A and B, different ports) share one data dir with
a short run lease. Each round sends one turn — create, update, complete, delete (which asks
for approval) or the approval itself, through the stock `langgraph-sdk` or `/chat/stream`,
always with an `Idempotency-Key` — to one of them, and SIGKILLs that process after a random
delay. The client then does what it would do against a load balancer: it turns to the other
process and rejoins the run it was told about (`join_stream` / `Last-Event-ID`), or resends
the request under the same key if it never learnt a run id. The other process follows the
run from the shared event log and takes it over once the dead owner's lease expires. The
killed process is restarted meanwhile, so both compete for the expired run.

Counted as in `faults.kills` (lost turns, side effects twice or missing, threads that cannot
continue, integrity failures, gaps or repeats in the event ids a client saw), plus how long a
takeover took and which process finished each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from langgraph_sdk import get_client

from faults.kills import SETTLE_TIMEOUT_S, KillDriver, KillReport, ThreadState
from faults.server import ServerProcess

# Paced like a hosted model, so a random kill lands inside a turn most of the time.
TOKEN_DELAY_MS = "15"
FIRST_TOKEN_DELAY_MS = "300"
LEASE_S = "2"
POLL_S = "0.2"
MAX_KILL_DELAY_S = 1.5


def pid_of(owner: object) -> int | None:
    """The process id in a run's lease owner ("host:pid:boot-id"), or None."""
    parts = str(owner or "").rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class LeaseWatch:
    """Samples every run's lease owner as it runs: which processes held which run, in order.

    The engine clears a run's lease when the run ends, so who ran it is seen only meanwhile.
    """

    def __init__(self, runs_db: Path | str, every_s: float = 0.05) -> None:
        """Watch the runs in `runs_db` (a SQLite file, or a PostgreSQL URL) every `every_s`."""
        self.runs_db = runs_db
        self.every_s = every_s
        self.held: dict[str, list[int]] = {}
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Read every run's lease owner now (read-only; nothing while the table is missing)."""
        if isinstance(self.runs_db, str):
            try:
                with psycopg.connect(self.runs_db, autocommit=True, connect_timeout=2) as pg:
                    rows = pg.execute("SELECT run_id, lease_owner FROM runs").fetchall()
            except psycopg.errors.UndefinedTable:
                return
            except psycopg.OperationalError:
                return  # the database is down (the restart fault): nothing changes meanwhile
        else:
            if not self.runs_db.exists():
                return
            conn = sqlite3.connect(f"file:{self.runs_db}?mode=ro", uri=True, timeout=10)
            try:
                rows = conn.execute("SELECT run_id, lease_owner FROM runs").fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return
                raise
            finally:
                conn.close()
        for run_id, owner in rows:
            pid = pid_of(owner)
            holders = self.held.setdefault(str(run_id), [])
            if pid is not None and (not holders or holders[-1] != pid):
                holders.append(pid)

    async def _watch(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def start(self) -> LeaseWatch:
        """Start sampling in the background; return self."""
        self._task = asyncio.create_task(self._watch())
        return self

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def holders(self, run_id: str) -> list[int]:
        """The pids that held the run's lease, in order (each once per stretch)."""
        self.sample()
        return self.held.get(run_id, [])

    def pids(self) -> set[int]:
        """Every pid that held any run's lease."""
        self.sample()
        return {pid for holders in self.held.values() for pid in holders}


@dataclass
class SharedReport(KillReport):
    """The counts of the shared-data-dir fault."""

    takeover_s: list[float] = field(default_factory=list)
    finished_by_other: int = 0
    finished_by_victim: int = 0


class SharedDriver(KillDriver):
    """Two servers on one data dir; `self.server` is the one the client talks to right now."""

    def __init__(self, workdir: Path, seed: int, database_url: str | None = None) -> None:
        """Two servers (not started) on one data dir or on `database_url`; four threads."""
        super().__init__(workdir, seed)
        self.database_url = database_url
        env = {
            **({"DATABASE_URL": database_url} if database_url else {}),
            "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": TOKEN_DELAY_MS,
            "TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS": FIRST_TOKEN_DELAY_MS,
            "TASKAGENT_RUN_LEASE_S": LEASE_S,
            "TASKAGENT_RUN_POLL_S": POLL_S,
        }
        self.servers = [
            ServerProcess(self.data_dir, env=env, log_path=workdir / f"server-{name}.log")
            for name in ("a", "b")
        ]
        self.server = self.servers[0]
        self.threads = [ThreadState("sdk") for _ in range(2)] + [
            ThreadState("chat") for _ in range(2)
        ]
        self.report: SharedReport = SharedReport(threads=len(self.threads))
        self.leases = LeaseWatch(database_url or self.data_dir / "runs.sqlite")

    async def start(self) -> None:
        """Start both servers on the (empty) data dir at once, as a deployment would."""
        await asyncio.gather(*(asyncio.to_thread(server.start) for server in self.servers))
        self.leases.start()

    async def round(self, index: int) -> None:
        """One turn on one server, a SIGKILL of that server, the turn settled on the other."""
        turn = self.plan(index)
        victim, other = self.servers[index % 2], self.servers[(index + 1) % 2]
        self.server = victim
        if turn.thread.client == "sdk" and turn.thread.thread_id is None:
            client = get_client(url=victim.url, timeout=SETTLE_TIMEOUT_S)
            turn.thread.thread_id = (await client.threads.create())["thread_id"]
        sender = asyncio.create_task(self.send(turn))
        await asyncio.sleep(self.rng.uniform(0.0, MAX_KILL_DELAY_S))
        mid_turn = not sender.done()
        victim.kill()
        killed_at = time.monotonic()
        self.report.kills += 1
        self.report.random_kills += 1
        self.report.mid_turn += int(mid_turn)
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        self.check_integrity(f"after kill {index}")
        # The killed server comes back while the other one takes the run over.
        restart = asyncio.create_task(asyncio.to_thread(victim.start))
        self.server = other
        try:
            await self.settle(turn)
        finally:
            await restart
        self.report.restart_s.append(victim.start_seconds[-1])
        if mid_turn and turn.status == "success" and turn.run_id is not None:
            self.report.takeover_s.append(time.monotonic() - killed_at)
            finisher = self.leases.holders(turn.run_id)[-1:]
            self.report.finished_by_other += int(finisher == [other.pid])
            self.report.finished_by_victim += int(finisher == [victim.pid])  # its new process
        self.check_integrity(f"after takeover {index}")

    async def close(self) -> None:
        """Stop watching and stop both servers."""
        await self.leases.stop()
        await asyncio.gather(*(asyncio.to_thread(server.close) for server in self.servers))


async def run_shared(
    count: int, workdir: Path, seed: int = 6, database_url: str | None = None
) -> SharedReport:
    """Run `count` rounds as described in the module docstring; return the counts.

    With `database_url` the two servers are replicas on PostgreSQL (their data dirs apart).
    """
    driver = SharedDriver(workdir, seed, database_url)
    await drive(driver, count)
    return driver.report


async def drive(driver: SharedDriver, count: int) -> None:
    """Start the servers, play `count` rounds, check every thread and effect, stop, time it."""
    started = time.monotonic()
    try:
        await driver.start()
        for index in range(1, count + 1):
            await driver.round(index)
        driver.server = driver.servers[0]
        await driver.follow_up_everywhere()
        driver.check_effects()
        driver.check_integrity("at the end")
    finally:
        await driver.close()
    driver.report.seconds = time.monotonic() - started
