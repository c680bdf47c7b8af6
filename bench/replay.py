"""Replay after restart: rejoin a finished run's stream past LangGraph's 2-minute buffer.

langgraph-api keeps a resumable stream for `RESUMABLE_STREAM_TTL_SECONDS` (120 by default in
the installed langgraph-api); the platform keeps it in Redis, which also forgets it on a
restart. Here both servers stream one turn with `stream_resumable=True` through the stock
SDK, then the client comes back after `--wait` seconds (default 130, past that TTL) and
rejoins with `Last-Event-ID` set to the turn's first event:

- `langgraph dev`: rejoined on the same process, then again after restarting it;
- this server: two replicas on PostgreSQL, both stopped and PostgreSQL itself restarted
  during the wait; the rejoin goes to a replica started afterwards on a fresh data dir.

Reported: events replayed out of those the first stream delivered after its first event,
and whether they are identical (id, event, data).

    python -m bench.replay [--wait 130]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client

from bench.report import write_report
from bench.servers import ZERO, Server, langgraph_dev, ours
from scripts.local_pg import LocalPostgres

GRAPH_ID = "agent"
STREAM_MODE: Any = ["updates", "messages-tuple"]
TURN: Any = {"messages": [{"role": "user", "content": "add a task to water the plants"}]}
REJOIN_LIMIT_S = 20.0

Event = tuple[str | None, str, str]


@dataclass
class Replay:
    """What one rejoin delivered against what the first stream had."""

    label: str
    expected: int
    got: list[Event] = field(default_factory=list)
    identical: bool = False
    error: str = ""


async def record(url: str) -> tuple[str, str, list[Event]]:
    """Stream one turn on a new thread; return the thread, the run and every event."""
    client = get_client(url=url)
    thread = await client.threads.create()
    events: list[Event] = []
    run_id = ""
    parts = client.runs.stream(
        thread["thread_id"],
        GRAPH_ID,
        input=TURN,
        stream_mode=STREAM_MODE,
        stream_resumable=True,
    )
    async for part in parts:
        if part.event == "metadata" and not run_id:
            run_id = str(part.data["run_id"])
        events.append((part.id, part.event, json.dumps(part.data, sort_keys=True)))
    return thread["thread_id"], run_id, events


async def rejoin(url: str, thread_id: str, run_id: str, events: list[Event], label: str) -> Replay:
    """Rejoin after the first event; compare with what the first stream delivered."""
    expected = [e for e in events[1:] if e[1] != "metadata"]
    replay = Replay(label, len(expected))
    client = get_client(url=url)

    async def read() -> None:
        parts = client.runs.join_stream(
            thread_id, run_id, last_event_id=events[0][0], stream_mode=STREAM_MODE
        )
        async for part in parts:
            if part.event != "metadata":
                replay.got.append((part.id, part.event, json.dumps(part.data, sort_keys=True)))

    try:
        await asyncio.wait_for(read(), REJOIN_LIMIT_S)
    except TimeoutError:
        replay.error = f"stream still open after {REJOIN_LIMIT_S:g} s"
    except Exception as exc:  # noqa: BLE001 - a failed rejoin is the measurement
        replay.error = f"{type(exc).__name__}: {exc}"[:200]
    replay.identical = replay.got == expected and bool(expected)
    return replay


def stop(server: Server) -> None:
    """SIGTERM the server and wait for it."""
    server.send(signal.SIGTERM)
    if server.proc is not None:
        server.proc.wait(timeout=30)


async def langgraph_dev_case(root: Path, wait_s: float) -> list[Replay]:
    """`langgraph dev`: rejoin after the wait, then after a restart."""
    server = langgraph_dev(root / "lgd", ZERO)
    server.start()
    try:
        await server.wait_ready()
        thread_id, run_id, events = await record(server.url)
        await asyncio.sleep(wait_s)
        results = [
            await rejoin(server.url, thread_id, run_id, events, f"langgraph dev, {wait_s:g} s")
        ]
        stop(server)
        server.start()
        await server.wait_ready()
        label = f"langgraph dev, {wait_s:g} s and a restart"
        results.append(await rejoin(server.url, thread_id, run_id, events, label))
        return results
    finally:
        stop(server)


async def replicas_case(root: Path, wait_s: float) -> list[Replay]:
    """Two replicas on PostgreSQL, everything restarted during the wait."""
    database = LocalPostgres(Path(tempfile.mkdtemp(prefix="bench-replay-pg-"))).start()
    servers: list[Server] = []
    try:
        url = database.create_database("replay")
        for number in range(2):
            server = ours(root / f"r{number}", ZERO)
            server.env["DATABASE_URL"] = url
            server.start()
            servers.append(server)
        for server in servers:
            await server.wait_ready()
        thread_id, run_id, events = await record(servers[0].url)
        for server in servers:
            stop(server)
        database.stop(fast=True)
        database.start()
        await asyncio.sleep(wait_s)
        fresh = ours(root / "r-fresh", ZERO)
        fresh.env["DATABASE_URL"] = url
        fresh.start()
        servers.append(fresh)
        await fresh.wait_ready()
        label = (
            f"this server, {wait_s:g} s, both replicas and PostgreSQL restarted,"
            " rejoined on a new replica"
        )
        return [await rejoin(fresh.url, thread_id, run_id, events, label)]
    finally:
        for server in servers:
            stop(server)
        database.stop()
        shutil.rmtree(database.directory, ignore_errors=True)


def table(results: list[Replay]) -> str:
    """The results as a markdown table."""
    lines = [
        "| case | events replayed | identical | error |",
        "| --- | ---: | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.label} | {len(r.got)} of {r.expected} | {'yes' if r.identical else 'no'}"
            f" | {r.error or ''} |"
        )
    return "\n".join(lines)


async def main_async(wait_s: float) -> list[Replay]:
    """Both cases side by side (the wait is most of the time)."""
    root = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        lgd, ours_ = await asyncio.gather(
            langgraph_dev_case(root, wait_s), replicas_case(root, wait_s)
        )
        return [*lgd, *ours_]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    """Run both cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=130.0)
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    started = time.perf_counter()
    results = asyncio.run(main_async(args.wait))
    written = write_report(
        "Replay after restart", table(results), time.perf_counter() - started, args.out
    )
    print(written)


if __name__ == "__main__":
    main()
