"""``python -m bench``: every workload in one run, written to docs/BENCHMARKS.md.

In process (zero delay): W1 first event/token vs raw LangGraph, W2 the 300-turn thread,
W5 durability modes. Over HTTP, this server vs ``langgraph dev`` serving the same graph with
the same offline engine: W1 and W4 at zero delay, W3 sessions and W6 disconnect storms at
hosted pacing. ``--quick`` runs everything smaller for development (minutes, not a quarter
of an hour); its figures are not the ones to publish.
"""

from __future__ import annotations

import os

# Production runs with strict msgpack (the Makefile exports it); measure that configuration.
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import (  # noqa: E402
    concurrency,
    http,
    inprocess,
    report,
    storm,
    throughput,
    turns,
    wallclock,
)
from bench.machine import cpu_model, load, versions  # noqa: E402
from bench.servers import HOSTED, ROOT, ZERO, langgraph_dev, ours, running  # noqa: E402

OUTPUT = ROOT / "docs" / "BENCHMARKS.md"
WORKLOADS = ("w1", "w2", "w3", "w4", "w5", "w6", "w7")


def plan(quick: bool) -> dict[str, float]:
    """Sizes of every workload: full or quick."""
    if quick:
        return dict(
            w1_reps=10, w1_warmups=2, w1_http_reps=6, w2_turns=40, w3_window=8, w3_jobs=50,
            w3_profile=1, w4_tasks=10, w4_reps=3, w4_concurrent=5, w5_turns=20,
            w6_clients=20, w6_repeats=1, w6_seed=20, w6_after=3, cpu_clients=3, cpu_turns=3,
            w7_clients=8, w7_window=8,
        )  # fmt: skip
    return dict(
        w1_reps=50, w1_warmups=5, w1_http_reps=20, w2_turns=300, w3_window=30, w3_jobs=200,
        w3_profile=1, w4_tasks=40, w4_reps=7, w4_concurrent=20, w5_turns=60,
        w6_clients=100, w6_repeats=3, w6_seed=40, w6_after=3, cpu_clients=5, cpu_turns=8,
        w7_clients=16, w7_window=20,
    )  # fmt: skip


async def run(args: argparse.Namespace) -> report.Results:
    """Run the selected workloads and collect the results."""
    size = plan(args.quick)
    levels = (10, 50) if args.quick else (10, 50, 200)
    res = report.Results(quick=args.quick)
    journal = res.journal
    started = time.perf_counter()
    wanted = set(args.only or WORKLOADS)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        root = Path(tmp)
        if "w1" in wanted:
            with journal.phase("W1 in process"):
                res.w1_local = await inprocess.first_events(
                    root, int(size["w1_reps"]), int(size["w1_warmups"])
                )
        if "w5" in wanted:
            with journal.phase("W5 durability"):
                res.w5 = await inprocess.durability(root, int(size["w5_turns"]))
        if "w2" in wanted:
            with journal.phase(f"W2 {int(size['w2_turns'])}-turn thread"):
                res.w2_turns = int(size["w2_turns"])
                res.w2 = await turns.long_thread(root / "w2", res.w2_turns)
        if wanted & {"w1", "w4"}:
            zero = [ours(root / "ours-zero", ZERO), langgraph_dev(root / "lgd-zero", ZERO)]
            async with running(zero):
                res.labels.update({s.key: s.label for s in zero})
                if "w1" in wanted:
                    with journal.phase("W1 over HTTP"):
                        res.w1_http = await http.first_event(zero, int(size["w1_http_reps"]), 2)
                if "w4" in wanted:
                    with journal.phase("W4 token streaming"):
                        res.w4_tasks = int(size["w4_tasks"])
                        res.w4 = await http.token_rate(
                            zero, res.w4_tasks, int(size["w4_reps"]), int(size["w4_concurrent"])
                        )
        if wanted & {"w3", "w6"}:
            paced = [
                ours(root / "ours-hosted", HOSTED),
                langgraph_dev(root / "lgd-hosted", HOSTED, jobs=int(size["w3_jobs"])),
            ]
            async with running(paced):
                res.labels.update({s.key: s.label for s in paced})
                if "w3" in wanted:
                    with journal.phase("Server CPU per paced tool turn"):
                        res.cpu_turn = await throughput.back_to_back(
                            paced[0], int(size["cpu_clients"]), turns_each=int(size["cpu_turns"])
                        )
                    res.w3_window_s = size["w3_window"]
                    with journal.phase("W3 sessions"):
                        res.w3 = await concurrency.concurrency(paced, levels, res.w3_window_s)
                    with journal.phase(f"W3 profile of this server, {max(levels)} sessions"):
                        res.w3_profile = await concurrency.profile(
                            paced[0], max(levels), res.w3_window_s, root / "profile.txt"
                        )
                if "w6" in wanted:
                    with journal.phase("W6 disconnect storms"):
                        res.w6 = await storm.storms(
                            paced[0],
                            int(size["w6_clients"]),
                            int(size["w6_after"]),
                            int(size["w6_repeats"]),
                            int(size["w6_seed"]),
                        )
        if "w3" in wanted:
            probed = ours(root / "ours-probed", HOSTED, probes=True)
            async with running([probed]):
                with journal.phase(f"W3 wall-clock view, {max(levels)} sessions"):
                    res.w3_wallclock = await wallclock.wall_clock(
                        probed, max(levels), size["w3_window"]
                    )
        if "w7" in wanted:
            res.w7_window_s = size["w7_window"]
            counts = [1, 2] if throughput.workers_flag() else [1]
            for workers in counts:
                server = ours(root / f"ours-w{workers}", ZERO, workers=workers)
                async with running([server]):
                    with journal.phase(f"W7 saturated throughput, {server.label}"):
                        res.w7.append(
                            await throughput.back_to_back(
                                server, int(size["w7_clients"]), window_s=size["w7_window"]
                            )
                        )
    elapsed = time.perf_counter() - started
    res.header = [
        "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by "
        f"`{'python -m bench --quick' if args.quick else 'make bench'}` in {elapsed / 60:.1f} "
        f"min{' (QUICK: small samples, not for publishing)' if args.quick else ''}.",
        f"Machine: {os.cpu_count()} × {cpu_model()}, shared by the servers, the clients and",
        f"whatever else ran; 1-minute load average {args.load_at_start:.2f} at the start.",
        f"Versions: {versions()}.",
        f"langgraph dev's checkpointer (langgraph.json): {lgd_checkpointer()}.",
    ]
    return res


def lgd_checkpointer() -> str:
    """What langgraph.json gives langgraph dev as checkpointer (its in-memory one if none)."""
    config = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    path = (config.get("checkpointer") or {}).get("path")
    return f"`{path}` (our SQLite saver)" if path else "none, so its in-memory saver"


def main() -> None:
    """Parse arguments, optionally wait for a quiet machine, run, write the report."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small samples, for development")
    parser.add_argument(
        "--only", nargs="+", choices=WORKLOADS, help="run only these workloads (default: all)"
    )
    parser.add_argument(
        "--wait-for-load",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the 1-minute load average to drop below 1.5",
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help=f"report file (default {OUTPUT})"
    )
    args = parser.parse_args()
    deadline = time.monotonic() + args.wait_for_load
    while load() >= 1.5 and time.monotonic() < deadline:
        print(f"[bench] load {load():.2f} ≥ 1.5, waiting ...", flush=True)
        time.sleep(15)
    args.load_at_start = load()
    res = asyncio.run(run(args))
    report.write(args.output, res)
    print(f"[bench] written to {args.output}")


if __name__ == "__main__":
    main()
