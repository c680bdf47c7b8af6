"""Server CPU per paced tool turn, and saturated throughput with one and two workers.

CPU per paced tool turn: a few sessions send task creations back to back at hosted pacing
(every token is its own event, as with a hosted model); the server's CPU over the run,
divided by the turns, is what one tool turn costs it. Saturated throughput: closed-loop
clients with no think time send turns at zero delay to this server with one worker and with
``--workers 2`` (when ``taskagent serve`` has the flag); completed turns per second.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.machine import load, tree_cpu_seconds
from bench.servers import ROOT, Server
from bench.streams import client_for, new_thread, stream_turn

TOOL_TURN = "Create a task to call the plumber about the leak, due Friday"
TURN_LIMIT_S = 60.0


@dataclass
class Turns:
    """Turns sent back to back by `clients` sessions, with the server's CPU over them."""

    server: str
    clients: int
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    ok: int = 0
    failed: int = 0
    load_before: float = 0.0
    load_after: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def cpu_per_turn(self) -> float:
        """Server CPU seconds per completed turn."""
        return self.server_cpu_s / self.ok if self.ok else float("nan")

    @property
    def throughput(self) -> float:
        """Completed turns per second of wall time."""
        return self.ok / self.wall_s if self.wall_s else float("nan")


async def back_to_back(
    server: Server, clients: int, *, turns_each: int = 0, window_s: float = 0.0
) -> Turns:
    """`clients` sessions sending turns with no pause: `turns_each` each, or for `window_s`."""
    result = Turns(server.label, clients, load_before=load())
    ready, all_created = asyncio.Event(), asyncio.Event()
    created = 0
    started = 0.0

    async def session() -> None:
        # One client (one connection) per session, as the W3 sessions do.
        async with client_for(server.url) as client:
            thread_id = await new_thread(client)
            nonlocal created
            created += 1
            if created == clients:
                all_created.set()
            await ready.wait()
            sent = 0
            while (turns_each and sent < turns_each) or (
                window_s and time.perf_counter() - started < window_s
            ):
                stream = await stream_turn(client, thread_id, TOOL_TURN, TURN_LIMIT_S)
                sent += 1
                if stream.ok:
                    result.ok += 1
                else:
                    result.failed += 1
                    result.errors.append(stream.error)

    sessions = [asyncio.create_task(session()) for _ in range(clients)]
    await asyncio.wait_for(all_created.wait(), 120)
    cpu = tree_cpu_seconds(server.pid)
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*sessions)
    result.wall_s = time.perf_counter() - started
    result.server_cpu_s = tree_cpu_seconds(server.pid) - cpu
    result.load_after = load()
    return result


def workers_flag() -> bool:
    """Whether ``taskagent serve`` takes ``--workers``."""
    shown = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "--workers" in shown.stdout
