"""`python -m faults`: run the fault-injection suite and write docs/RELIABILITY.md.

    .venv/bin/python -m faults                  # everything (`make faults`, about 15–20 min)
    .venv/bin/python -m faults --quick          # the short set, small counts (about a minute)
    .venv/bin/python -m faults --only kills --kills 20
    .venv/bin/python -m faults --only shared --shared 10

Exits non-zero when any fault breaks its expectation.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path

from faults.database_restart import run_restarts
from faults.kills import KillReport, run_kills
from faults.load import run_load
from faults.models import run_model_faults
from faults.report import (
    Row,
    kill_row,
    load_row,
    model_row,
    render,
    restart_row,
    shared_row,
    storage_expectation,
    storage_row,
)
from faults.shared import run_shared
from faults.storage import disk_full_fault, lock_fault, scratch
from scripts.local_pg import LocalPostgres

FAULTS = ("kills", "shared", "replicas", "pg-restart", "lock", "disk", "models", "load")
REPO = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short set (small counts)")
    parser.add_argument(
        "--only", default=",".join(FAULTS), help=f"comma-separated subset of {', '.join(FAULTS)}"
    )
    parser.add_argument("--kills", type=int, help="SIGKILLs (default 100; quick 5)")
    parser.add_argument(
        "--shared", type=int, help="SIGKILLs with two servers on one data dir (default 20; quick 3)"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        help="SIGKILLs of one of two replicas on PostgreSQL (default 50; quick 3)",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        help="PostgreSQL restarts under two replicas (default 20; quick 3)",
    )
    parser.add_argument("--model-turns", type=int, help="turns per model fault (10; quick 2)")
    parser.add_argument("--sessions", type=int, help="load sessions (default 200; quick 20)")
    parser.add_argument("--load-seconds", type=float, help="load duration (300; quick 10)")
    parser.add_argument("--seed", type=int, default=6, help="random seed of kills and load")
    parser.add_argument(
        "--out",
        type=Path,
        help="report to write (default docs/RELIABILITY.md for a full run; none with --quick)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch data dirs")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    quick = args.quick
    args.kills = args.kills or (5 if quick else 100)
    args.shared = args.shared or (3 if quick else 20)
    args.replicas = args.replicas or (3 if quick else 50)
    args.restarts = args.restarts or (3 if quick else 20)
    args.model_turns = args.model_turns or (1 if quick else 10)
    args.sessions = args.sessions or (20 if quick else 200)
    args.load_seconds = args.load_seconds or (10.0 if quick else 300.0)
    if args.out is None and not quick and args.only == ",".join(FAULTS):
        args.out = REPO / "docs" / "RELIABILITY.md"
    return args


def say(text: str) -> None:
    """Progress on stderr, flushed."""
    print(text, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    """Run the chosen faults in order; return the table rows and the detail sections."""
    chosen = args.only.split(",")
    rows: list[Row] = []
    details: list[str] = []
    scratches: list[Path] = []

    def workdir(name: str) -> Path:
        path = scratch(name)
        scratches.append(path)
        return path

    base = ".venv/bin/python -m faults"
    try:
        if "kills" in chosen:
            say(f"kills: {args.kills} SIGKILLs …")
            kills = await run_kills(args.kills, workdir("kills"), seed=args.seed)
            rows.append(
                kill_row(kills, f"{base} --only kills --kills {args.kills} --seed {args.seed}")
            )
            details.append(kill_details(kills))
        if "shared" in chosen:
            say(f"shared: {args.shared} SIGKILLs with two servers on one data dir …")
            shared = await run_shared(args.shared, workdir("shared"), seed=args.seed)
            rows.append(
                shared_row(
                    shared, f"{base} --only shared --shared {args.shared} --seed {args.seed}"
                )
            )
            details.append(kill_details(shared, "Shared-data-dir problems"))
        if "replicas" in chosen:
            say(f"replicas: {args.replicas} SIGKILLs of one of two replicas on PostgreSQL …")
            postgres = LocalPostgres(workdir("postgres")).start()
            try:
                replicas = await run_shared(
                    args.replicas, workdir("replicas"), seed=args.seed, database_url=postgres.url()
                )
            finally:
                postgres.stop()
            rows.append(
                shared_row(
                    replicas,
                    f"{base} --only replicas --replicas {args.replicas} --seed {args.seed}",
                    replicas_on="PostgreSQL",
                )
            )
            details.append(kill_details(replicas, "Replica problems"))
        if "pg-restart" in chosen:
            say(f"pg-restart: {args.restarts} PostgreSQL restarts under two replicas …")
            restarts = await run_restarts(
                args.restarts, workdir("pg-restart"), workdir("postgres-restart"), seed=args.seed
            )
            rows.append(
                restart_row(
                    restarts,
                    f"{base} --only pg-restart --restarts {args.restarts} --seed {args.seed}",
                )
            )
            details.append(kill_details(restarts, "Database-restart problems"))
        if "lock" in chosen:
            for database in ("tasks", "runs"):
                say(f"lock: {database}.sqlite …")
                report = await lock_fault(database, workdir(f"lock-{database}"))
                rows.append(storage_row(report, storage_expectation("lock"), f"{base} --only lock"))
        if "disk" in chosen:
            say("disk: full …")
            report = await disk_full_fault(workdir("disk"))
            rows.append(storage_row(report, storage_expectation("disk"), f"{base} --only disk"))
        if "models" in chosen:
            say(f"models: {args.model_turns} turns per fault …")
            for model in await run_model_faults(args.model_turns, workdir("models")):
                rows.append(
                    model_row(model, f"{base} --only models --model-turns {args.model_turns}")
                )
        if "load" in chosen:
            say(f"load: {args.sessions} sessions for {args.load_seconds:g} s …")
            load = await run_load(args.sessions, args.load_seconds, workdir("load"), args.seed)
            rows.append(
                load_row(
                    load,
                    f"{base} --only load --sessions {args.sessions}"
                    f" --load-seconds {args.load_seconds:g}",
                )
            )
            if load.problems:
                details.append("Load errors (first 20): " + "; ".join(load.problems) + "\n")
            if load.reconnect_causes:
                details.append(
                    "Dropped load connections (first 20): "
                    + "; ".join(load.reconnect_causes)
                    + "\n"
                )
    finally:
        if not args.keep:
            for path in scratches:
                shutil.rmtree(path, ignore_errors=True)
    return rows, details


def kill_details(kills: KillReport, title: str = "Kill-fault problems") -> str:
    """Problems a kill fault ran into, if any (an empty string when there were none)."""
    if not kills.problems:
        return ""
    return f"{title}: " + "; ".join(kills.problems[:30]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table, write the report; 1 if any fault failed."""
    args = parse(argv)
    started = time.monotonic()
    rows, details = asyncio.run(run(args))
    seconds = time.monotonic() - started
    for row in rows:
        say(f"{'PASS' if row.passed else 'FAIL'}  {row.fault}: {row.observed}")
    for detail in details:
        if detail:
            say(detail)
    if args.out is not None:
        command = (
            "make faults" if args.out == REPO / "docs" / "RELIABILITY.md" else "python -m faults"
        )
        text = render(rows, command=command, seconds=seconds, details=[d for d in details if d])
        args.out.write_text(text)
        say(f"wrote {args.out}")
    say(f"{len(rows)} faults in {seconds:.0f} s")
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
