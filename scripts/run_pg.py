"""`make run-pg`: PostgreSQL and two replicas behind a round-robin balancer, on one machine.

Starts a PostgreSQL server from Debian's packages (installed if missing) in a scratch
directory, two `taskagent serve` replicas on it with `DATABASE_URL` set, and a round-robin
TCP balancer in front, all on loopback. Kill a replica (its pid is printed) and watch the
other take its runs over; ^C stops everything. The database stays in the scratch directory
for the next start.

    python -m scripts.run_pg [--port 8000] [--dir /tmp/taskagent-pg] [--replicas 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from scripts.local_pg import LocalPostgres, free_port
from scripts.rr_proxy import RoundRobin

REPO = Path(__file__).resolve().parents[1]
READY_S = 60.0


def start_replica(number: int, url: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start one replica on a free port; return it and its port once it answers /ok."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "TASKAGENT_DATA_DIR": str(directory / f"r{number}")}
    log = open(directory / f"replica{number}.log", "ab")  # noqa: SIM115 - the replica's
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"replica {number} exited; see {directory}/replica{number}.log")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ok", timeout=1):
                return proc, port
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"replica {number} did not answer within {READY_S:g} s")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Start PostgreSQL, the replicas and the balancer; stop them all on ^C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    # Under /tmp: run as root, the server runs as the postgres user, who must reach it.
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "taskagent-pg")
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # stop everything on a plain `kill` too
    directory = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    database = LocalPostgres(directory / "postgres").start()
    replicas: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for number in range(1, args.replicas + 1):
            proc, port = start_replica(number, database.url(), directory)
            replicas.append(proc)
            ports.append(port)
            print(f"replica {number}: http://127.0.0.1:{port}  (pid {proc.pid})", flush=True)
        print(f"PostgreSQL: {database.url()}", flush=True)
        print(
            f"balancer: http://127.0.0.1:{args.port}  (round-robin; kill -9 a replica's pid to"
            " watch the other take over; ^C stops everything)",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(RoundRobin(ports).serve(args.port))
    finally:
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, signal.SIG_IGN)  # a second ^C must not cut the shutdown short
        for proc in replicas:
            proc.terminate()
        for proc in replicas:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        database.stop()


if __name__ == "__main__":
    main()
