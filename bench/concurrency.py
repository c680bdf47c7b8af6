"""W3: 10, 50 and 200 concurrent chat sessions at hosted pacing, per server.

The sessions (see ``bench.sessions``) run in a separate client process so their CPU is
measured apart from the server's; both share the machine's cores, as they would on a
small host. Added latency = turn latency − the pacing-only ideal of that turn.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import cpu_seconds, load
from bench.servers import ROOT, Server
from bench.stats import Spread


@dataclass
class Level:
    """One server at one number of sessions."""

    server: str
    sessions: int
    window_s: float
    turns: list[dict[str, Any]] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    wall_s: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0
    error: str = ""

    @property
    def measured(self) -> list[dict[str, Any]]:
        """Turns that started inside the window (after the ramp)."""
        return [t for t in self.turns if t["measured"]]

    @property
    def ok(self) -> list[dict[str, Any]]:
        """Measured turns that completed cleanly."""
        return [t for t in self.measured if t["ok"]]

    @property
    def failed(self) -> int:
        """Measured turns that errored or timed out."""
        return len(self.measured) - len(self.ok)

    def offered(self) -> float:
        """Turns per second the sessions would send with zero added latency."""
        from bench.sessions import THINK_S

        ideal = [t["ideal"] for t in self.ok]
        mean_turn = sum(ideal) / len(ideal) if ideal else 0.0
        return self.sessions / (sum(THINK_S) / 2 + mean_turn)

    def added(self) -> Spread:
        """Added latency of the ok turns (s)."""
        return Spread.of([t["latency"] - t["ideal"] for t in self.ok])

    def latency(self) -> Spread:
        """Whole-turn latency of the ok turns (s)."""
        return Spread.of([t["latency"] for t in self.ok])

    def throughput(self) -> float:
        """Completed turns per second of the window."""
        return len(self.ok) / self.window_s if self.window_s else math.nan

    def cpu_per_turn(self) -> float:
        """Server CPU seconds per completed turn (ramp and window alike)."""
        done = [t for t in self.turns if t["ok"]]
        return self.server_cpu_s / len(done) if done else math.nan


async def run_level(server: Server, sessions: int, window_s: float) -> Level:
    """Run `sessions` sessions against `server` for `window_s` in a client process."""
    level = Level(server.key, sessions, window_s, load_before=load())
    argv = [
        sys.executable,
        "-m",
        "bench.sessions",
        server.url,
        str(sessions),
        f"{window_s:g}",
        f"{server.pacing.first_ms:g}",
        f"{server.pacing.token_ms:g}",
    ]
    cpu = cpu_seconds(server.pid)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    level.wall_s = time.perf_counter() - started
    level.server_cpu_s = cpu_seconds(server.pid) - cpu
    level.load_after = load()
    if proc.returncode != 0:
        level.error = err.decode(errors="replace")[-600:]
        return level
    data = json.loads(out)
    level.turns = data["turns"]
    level.client_cpu_s = data["client_cpu_s"]
    return level


async def concurrency(
    servers: Sequence[Server], levels: Sequence[int], window_s: float
) -> list[Level]:
    """Every level on every server, ours first at each level, a short pause between runs."""
    results: list[Level] = []
    for sessions in levels:
        for server in servers:
            print(f"[bench]   W3 {server.label}: {sessions} sessions", flush=True)
            results.append(await run_level(server, sessions, window_s))
            await asyncio.sleep(2.0)
    return results


@dataclass
class Profile:
    """A py-spy sample of the server while sessions ran: top frames by share of samples."""

    sessions: int
    samples: int = 0
    own: list[tuple[str, float]] = field(default_factory=list)
    inclusive: list[tuple[str, float]] = field(default_factory=list)
    areas: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


def _areas() -> tuple[tuple[str, tuple[str, ...]], ...]:
    ours = str(ROOT)
    return (
        ("aiosqlite / sqlite3", ("/aiosqlite/", "/sqlite3/")),
        (
            "checkpoint serde (msgpack, zlib)",
            ("/langgraph/checkpoint/serde/", "zlib", "ormsgpack", f"{ours}/tools/codec.py"),
        ),
        ("json", ("/json/",)),
        ("pydantic", ("/pydantic/", "/pydantic_core/")),
        ("server/ (runs, event log, SSE, API)", (f"{ours}/server/",)),
        (
            "graph/, nodes/, tools/, models/ (the agent)",
            tuple(f"{ours}/{d}/" for d in ("graph", "nodes", "tools", "models")),
        ),
        ("langgraph (Pregel loop, channels, checkpointer)", ("/langgraph/",)),
        ("langchain-core callbacks, messages, runnables", ("/langchain_core/",)),
        (
            "sse-starlette, starlette, fastapi, uvicorn, anyio",
            ("/sse_starlette/", "/starlette/", "/fastapi/", "/uvicorn/", "/anyio/", "/h11/"),
        ),
        ("asyncio event loop", ("asyncio/", "uvloop")),
    )


async def profile(server: Server, sessions: int, window_s: float, out: Path) -> Profile:
    """Sample the server with ``py-spy record`` (raw collapsed stacks) under a session load."""
    result = Profile(sessions)
    from bench.sessions import THINK_S

    spy = Path(sys.executable).parent / "py-spy"
    load_run = asyncio.create_task(run_level(server, sessions, window_s))
    # Sample the window only, not the ramp (client start-up ≈ 1.5 s, then THINK_S[1]).
    await asyncio.sleep(THINK_S[1] + 1.5)
    recorder = await asyncio.create_subprocess_exec(
        str(spy),
        "record",
        "--pid",
        str(server.pid),
        "--format",
        "raw",
        "--rate",
        "200",
        "--nonblocking",
        "--gil",
        "--full-filenames",
        "--duration",
        str(int(window_s)),
        "--output",
        str(out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await recorder.communicate()
    await load_run
    if recorder.returncode != 0 or not out.exists():
        result.error = err.decode(errors="replace")[-400:]
        return result
    summarize(out.read_text(encoding="utf-8", errors="replace"), result)
    return result


def summarize(collapsed: str, result: Profile, top: int = 12) -> None:
    """Fill `result` from py-spy raw output: leaf ('own') and inclusive shares, and areas."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    areas: dict[str, int] = {}
    table = _areas()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        total += count
        leaf = frames[-1] if frames else "?"
        own[leaf] = own.get(leaf, 0) + count
        for frame in dict.fromkeys(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        # The sample belongs to the innermost frame that falls in a known area.
        area = next(
            (
                name
                for frame in reversed(frames)
                for name, needles in table
                if any(needle in frame for needle in needles)
            ),
            "other",
        )
        areas[area] = areas.get(area, 0) + count
    result.samples = total
    if not total:
        return

    def share(counts: dict[str, int], top: int = top) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return [(name, count / total) for name, count in ranked]

    result.own = share(own)
    result.inclusive = share(inclusive, top=60)
    result.areas = share(areas)
