"""The stock PostgreSQL saver's per-instance lock vs our lock-free subclass, same pool, one run.

`AsyncPostgresSaver` takes one asyncio lock around every call even on a pool, so concurrent
turns of one replica write their checkpoints one at a time. This writes the same checkpoints
(`aput` + `aput_writes`, a small state) from C concurrent "turns" through each saver, both on
a pool of 20 connections to a local PostgreSQL, alternating rounds so that machine noise hits
both alike, and reports the median wall time per round and the ratio.

    python -m bench.pg_saver [--turns 20] [--steps 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from graph.pg_checkpointer import PgSaver
from scripts.local_pg import LocalPostgres
from tools.postgres import open_pool


async def one_round(saver: AsyncPostgresSaver, turns: int, steps: int) -> float:
    """Seconds for `turns` concurrent threads to write `steps` checkpoints each."""

    async def turn() -> None:
        config: Any = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
        for step in range(steps):
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"messages": [f"message {step}" * 20]}
            checkpoint["channel_versions"] = {"messages": step + 1}
            config = await saver.aput(
                config, checkpoint, {"source": "loop", "step": step}, {"messages": step + 1}
            )
            await saver.aput_writes(config, [("messages", f"write {step}")], f"task-{step}")

    started = time.perf_counter()
    await asyncio.gather(*(turn() for _ in range(turns)))
    return time.perf_counter() - started


async def compare(turns: int, steps: int, rounds: int) -> tuple[list[float], list[float]]:
    """Median seconds per round of the stock saver and of ours."""
    database = LocalPostgres(Path(tempfile.mkdtemp(prefix="bench-saver-"))).start()
    try:
        pool = await open_pool(database.url(), max_size=20)
        try:
            stock = AsyncPostgresSaver(pool)
            await stock.setup()
            ours = PgSaver(pool)
            stock_s, ours_s = [], []
            for _ in range(rounds):
                stock_s.append(await one_round(stock, turns, steps))
                ours_s.append(await one_round(ours, turns, steps))
            return stock_s, ours_s
        finally:
            await pool.close()
    finally:
        database.stop()


def main() -> None:
    """Run the comparison and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stock_s, ours_s = asyncio.run(compare(args.turns, args.steps, args.rounds))
    stock, ours = statistics.median(stock_s), statistics.median(ours_s)
    print(
        f"{args.turns} concurrent turns x {args.steps} steps, median of {args.rounds} rounds:"
        f" stock saver {stock:.3f} s, lock-free {ours:.3f} s, stock/ours = {stock / ours:.2f}x"
    )


if __name__ == "__main__":
    main()
