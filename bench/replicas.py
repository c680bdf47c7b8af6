"""Replicas: SQLite in one process vs 1 and 2 replicas on PostgreSQL, same sessions, one run.

Each configuration serves the W3 chat sessions (``bench.sessions``: hosted pacing, think time)
at each level; the load runs in its own process. Reported per configuration and level:
completed turns per second, p50/p95 added latency (turn latency minus what the scripted model
alone spends), failed turns, and CPU seconds per completed turn — servers and PostgreSQL
together — the figure to extrapolate from: these machines have 2 cores, so two replicas
compete with each other, PostgreSQL and the load for them, and do not show scaling by
themselves.

    python -m bench.replicas [--levels 50,200] [--window 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.machine import load
from bench.report import write_report
from bench.servers import HOSTED, ROOT, Server, free_port, ours
from bench.stats import Spread
from scripts.local_pg import LocalPostgres
from scripts.rr_proxy import RoundRobin


@dataclass
class Result:
    """One configuration at one number of sessions."""

    config: str
    sessions: int
    window_s: float
    turns: list[dict[str, Any]] = field(default_factory=list)
    cpu_s: float = 0.0
    load: float = 0.0
    error: str = ""

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [t for t in self.turns if t["measured"] and t["ok"]]

    @property
    def failed(self) -> int:
        return len([t for t in self.turns if t["measured"]]) - len(self.ok)

    def added(self) -> Spread:
        return Spread.of([t["latency"] - t["ideal"] for t in self.ok])

    def cpu_per_turn(self) -> float:
        done = [t for t in self.turns if t["ok"]]
        return self.cpu_s / len(done) if done else math.nan


def cpu_of(pids: list[int]) -> float:
    """CPU seconds so far of these processes and their children."""
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for proc in (process, *process.children(recursive=True)):
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


async def sessions(url: str, count: int, window_s: float, pids: list[int], config: str) -> Result:
    """Run `count` sessions against `url` for `window_s` in a client process."""
    result = Result(config, count, window_s, load=load())
    argv = [
        sys.executable,
        "-m",
        "bench.sessions",
        url,
        str(count),
        f"{window_s:g}",
        f"{HOSTED.first_ms:g}",
        f"{HOSTED.token_ms:g}",
    ]
    before = cpu_of(pids)
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    result.cpu_s = cpu_of(pids) - before
    if proc.returncode != 0:
        result.error = err.decode(errors="replace")[-600:]
    else:
        result.turns = json.loads(out)["turns"]
    return result


async def configuration(
    name: str, replicas: int, database: LocalPostgres | None, levels: list[int], window_s: float
) -> list[Result]:
    """Start the configuration's servers, run every level, stop them."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    url = database.create_database(name.replace("-", "_")) if database else None
    servers: list[Server] = []
    for number in range(replicas):
        server = ours(workdir / f"r{number}", HOSTED)
        server.workdir.mkdir(parents=True, exist_ok=True)
        if url:
            server.env["DATABASE_URL"] = url
        server.start()
        servers.append(server)
    proxy: asyncio.Task[None] | None = None
    try:
        for server in servers:
            await server.wait_ready()
        target = servers[0].url
        if replicas > 1:
            port = free_port()
            proxy = asyncio.create_task(RoundRobin([s.port for s in servers]).serve(port))
            await asyncio.sleep(0.2)
            target = f"http://127.0.0.1:{port}"
        pids = [s.pid for s in servers]
        if database is not None and database.proc is not None:
            pids.append(database.proc.pid)
        results = []
        for count in levels:
            print(f"[bench] replicas {name}: {count} sessions", flush=True)
            results.append(await sessions(target, count, window_s, pids, name))
            await asyncio.sleep(2.0)
        return results
    finally:
        if proxy is not None:
            proxy.cancel()
        for server in servers:
            server.send(signal.SIGTERM)
        for server in servers:
            if server.proc is not None:
                server.proc.wait(timeout=30)


def table(results: list[Result]) -> str:
    """The results as a markdown table."""
    lines = [
        "| configuration | sessions | turns/s | added p50 (s) | added p95 (s) | failed"
        " | CPU s per turn (servers + PostgreSQL) | load avg |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.config} | {r.sessions} | error: {r.error[:80]} | | | | | |")
            continue
        added = r.added()
        lines.append(
            f"| {r.config} | {r.sessions} | {len(r.ok) / r.window_s:.2f} | {added.p50:.3f}"
            f" | {added.p95:.3f} | {r.failed} | {r.cpu_per_turn():.3f} | {r.load:.1f} |"
        )
    return "\n".join(lines)


async def main_async(levels: list[int], window_s: float) -> list[Result]:
    """SQLite single process, then PostgreSQL with 1 and 2 replicas."""
    results = await configuration("sqlite-1", 1, None, levels, window_s)
    database = LocalPostgres(Path(tempfile.mkdtemp(prefix="bench-pg-"))).start()
    try:
        results += await configuration("postgres-1", 1, database, levels, window_s)
        results += await configuration("postgres-2", 2, database, levels, window_s)
    finally:
        database.stop()
    return results


def main() -> None:
    """Run the comparison and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="50,200")
    parser.add_argument("--window", type=float, default=40.0)
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    started = time.perf_counter()
    results = asyncio.run(main_async(levels, args.window))
    written = write_report(
        "Replicas on PostgreSQL", table(results), time.perf_counter() - started, args.out
    )
    print(written)


if __name__ == "__main__":
    main()
