"""Load: many concurrent streaming sessions against one server, with its memory watched.

Each session is one user (its own API key) on one thread, doing turns back to back over
`/chat/stream` with a short think time: create a task, ask for the high-priority ones,
complete the task it created, and every fifth round delete one (answering the approval). The
offline engine is paced like a hosted model. The server's RSS is sampled every few seconds.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from faults.client import chat_body, read_events
from faults.server import ServerProcess

TOKEN_DELAY_MS = "20"
THINK_S = (0.5, 1.5)
TURN_TIMEOUT_S = 120.0
RSS_EVERY_S = 2.0
RECONNECTS = 2
# RSS "levels off" when it grows less than this over the last minute of the run.
FLAT_MIB_PER_MIN = 1.0


@dataclass
class LoadReport:
    """What the sessions saw and how the server's memory moved."""

    sessions: int
    seconds: float
    turns: int = 0
    errors: int = 0
    resent: int = 0
    rejoined: int = 0
    reconnect_causes: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def zero(self) -> bool:
        """No errors, some turns completed, and (on runs of 2 minutes or more) RSS levelled off."""
        levelled = self.seconds < 120 or self.rss_slope(60) < FLAT_MIB_PER_MIN
        return self.errors == 0 and self.turns > 0 and levelled

    def rss_by_minute(self) -> list[float]:
        """Server RSS in MiB at the start and at each full minute."""
        marks: list[float] = []
        for t, value in self.rss:
            if t >= 60 * len(marks):
                marks.append(value / 2**20)
        return marks

    def percentile(self, q: float) -> float:
        """Turn latency at quantile `q` (0–1), in seconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def rss_mib(self) -> tuple[float, float, float]:
        """Server RSS at start, peak and end, in MiB."""
        if not self.rss:
            return 0.0, 0.0, 0.0
        values = [value / 2**20 for _, value in self.rss]
        return values[0], max(values), values[-1]

    def rss_slope(self, window_s: float) -> float:
        """Least-squares slope of RSS over the last `window_s` seconds, in MiB per minute."""
        if not self.rss:
            return 0.0
        end = self.rss[-1][0]
        points = [(t, value / 2**20) for t, value in self.rss if t >= end - window_s]
        if len(points) < 3:
            return 0.0
        slope = statistics.linear_regression([t for t, _ in points], [v for _, v in points])
        return float(slope.slope) * 60


@dataclass
class Progress:
    """How far a turn's stream got: where to rejoin it and the last event id seen."""

    location: str | None = None
    last_id: int = 0
    done: dict[str, Any] | None = None


class Session:
    """One user's conversation, turn after turn."""

    def __init__(self, index: int, http: httpx.AsyncClient, key: str, rng: random.Random) -> None:
        self.index = index
        self.http = http
        self.headers = {"X-Api-Key": key}
        self.rng = rng
        self.thread_id: str | None = None
        self.created: list[str] = []

    async def turn(self, report: LoadReport, body: dict[str, Any]) -> dict[str, Any] | None:
        """One streamed turn; counts its latency or its error; returns the done event.

        Like a real client, a dropped connection is not the end of the turn: before any answer
        the request is sent again under the same Idempotency-Key (the server returns the same
        run), after the stream started it is rejoined with Last-Event-ID. Each is counted.
        """
        started = time.monotonic()
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        progress = Progress()
        try:
            for attempt in range(1, RECONNECTS + 2):
                try:
                    await self._stream(body, headers, progress)
                    break
                except httpx.TransportError as exc:
                    if attempt > RECONNECTS:
                        raise
                    if progress.location is None:
                        report.resent += 1
                    else:
                        report.rejoined += 1
                    if len(report.reconnect_causes) < 20:
                        report.reconnect_causes.append(
                            f"session {self.index}: {type(exc).__name__} after"
                            f" {progress.last_id} events"
                        )
            if progress.done is None:
                raise RuntimeError("stream ended without a done event")
        except Exception as exc:
            report.errors += 1
            if len(report.problems) < 20:
                report.problems.append(f"session {self.index}: {type(exc).__name__}: {exc}")
            return None
        report.turns += 1
        report.latencies.append(time.monotonic() - started)
        return progress.done

    async def _stream(
        self, body: dict[str, Any], headers: dict[str, str], progress: Progress
    ) -> None:
        if progress.location is None:
            request = self.http.build_request(
                "POST", "/chat/stream", json=body, headers=headers, timeout=TURN_TIMEOUT_S
            )
        else:
            rejoin = {**self.headers, "Last-Event-ID": str(progress.last_id)}
            request = self.http.build_request(
                "GET", progress.location, headers=rejoin, timeout=TURN_TIMEOUT_S
            )
        response = await self.http.send(request, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            progress.location = progress.location or response.headers.get("location")
            async for event in read_events(response):
                progress.last_id = event.id or progress.last_id
                if event.event == "metadata":
                    self.thread_id = event.data["thread_id"]
                elif event.event == "error":
                    raise RuntimeError(f"error event {event.data}")
                elif event.event == "done":
                    progress.done = event.data
        finally:
            await response.aclose()

    async def run(self, report: LoadReport, deadline: float) -> None:
        """Turns back to back with a short think time until the deadline."""
        round_ = 0
        while time.monotonic() < deadline:
            round_ += 1
            title = f"Load {self.index}-{round_}"
            done = await self.turn(
                report, chat_body(f"Create a task called {title}, low priority", self.thread_id)
            )
            for call in (done or {}).get("tool_calls", []):
                task = (call.get("result") or {}).get("task") or {}
                if task.get("id"):
                    self.created.append(str(task["id"]))
            await self.think()
            steps = ["show my high priority tasks"]
            if self.created:
                steps.append(f"mark {self.created[-1]} done")
            for message in steps:
                if time.monotonic() >= deadline:
                    return
                await self.turn(report, chat_body(message, self.thread_id))
                await self.think()
            if round_ % 5 == 0 and self.created and time.monotonic() < deadline:
                done = await self.turn(
                    report, chat_body(f"delete {self.created.pop(0)}", self.thread_id)
                )
                if done and done.get("interrupt"):
                    await self.think()
                    await self.turn(report, chat_body(None, self.thread_id, {"approved": True}))
                await self.think()

    async def think(self) -> None:
        """Pause like a person reading the answer."""
        await asyncio.sleep(self.rng.uniform(*THINK_S))


async def sample_rss(pid: int, report: LoadReport, started: float, stop: asyncio.Event) -> None:
    """Record the server's RSS every few seconds until told to stop."""
    process = psutil.Process(pid)
    while not stop.is_set():
        report.rss.append((time.monotonic() - started, process.memory_info().rss))
        try:
            await asyncio.wait_for(stop.wait(), RSS_EVERY_S)
        except TimeoutError:
            pass


async def run_load(sessions: int, seconds: float, workdir: Path, seed: int = 6) -> LoadReport:
    """Run `sessions` concurrent sessions for `seconds` against one fresh server."""
    keys = [f"load-key-{index:04d}-{seed}" for index in range(sessions)]
    server = ServerProcess(
        workdir / "data",
        env={
            "TASKAGENT_API_KEYS": ",".join(f"{k}:user{i}:write" for i, k in enumerate(keys)),
            "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": TOKEN_DELAY_MS,
        },
        log_path=workdir / "server.log",
    )
    await asyncio.to_thread(server.start)
    report = LoadReport(sessions=sessions, seconds=seconds)
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=sessions + 10, max_keepalive_connections=sessions + 10)
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=server.url, limits=limits) as http:
            started = time.monotonic()
            sampler = asyncio.create_task(sample_rss(server.pid, report, started, stop))
            deadline = started + seconds
            users = [
                Session(i, http, key, random.Random(rng.random())) for i, key in enumerate(keys)
            ]
            await asyncio.gather(*(user.run(report, deadline) for user in users))
            stop.set()
            await sampler
    finally:
        await asyncio.to_thread(server.stop)
    return report
