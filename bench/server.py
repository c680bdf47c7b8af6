"""This server vs `langgraph dev`: the same graph and model over the same protocol, as ratios.

Run with ``uv run python -m bench.server``. Both servers serve ``graph/builder.py:graph`` (graph
id ``agent``) with the built-in deterministic offline engine (no OLLAMA_*/OPENAI_* variables
reach them) and are driven by the stock ``langgraph_sdk`` with the same calls: create a thread,
then ``runs.stream(thread, "agent", stream_mode=["updates", "messages-tuple"])``.

Workloads, the two servers interleaved (A, B, A, B, ...) where that is possible:

* W1 - time to the first SSE event and to the first token of one turn on a fresh thread,
  zero pacing;
* W4 - streamed tokens per second of one long answer ("list my tasks" over 40+ tasks),
  zero pacing;
* W3 - 100 concurrent streams, one per thread, with hosted-like pacing (20 ms per word):
  throughput, latency added to the solo turn, errors.

Each server runs in its own temporary working directory (so no ``.env`` is read and
``langgraph dev``'s ``.langgraph_api/`` folder never lands in the repository) with its own
``TASKAGENT_DATA_DIR``. Prints markdown tables and writes them to ``bench/results/server.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "server.md"
GRAPH_ID = "agent"
W1_MESSAGE = "Create a high-priority task for the quarterly review due next Friday"
W4_SEED = "add a task to water plant {n}"
W4_MESSAGE = "list my tasks"
STREAM_MODE: list[StreamMode] = ["updates", "messages-tuple"]
STREAM_LIMIT_S = 30.0  # W1, W4 and baselines: a stalled stream must not hang the run
FIRST_EVENT_TARGET = 30.0  # the issue: ours >= 30x faster to the first event
# Variables that would give either server another model tier, tracing or a different config.
SCRUBBED_PREFIXES = ("OLLAMA_", "OPENAI_", "TASKAGENT_", "LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_")


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """One server process under test: how to start it, where it lives, its log."""

    key: str
    label: str
    argv: Callable[[int], list[str]]
    workdir: Path
    delay_ms: float
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    ready_s: float = 0.0

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        """The process's stdout and stderr."""
        return self.workdir / "server.log"

    def start(self) -> None:
        """Start the process in its own session (so a Ctrl-C reaches only the benchmark)."""
        self.port = free_port()
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = server_env(data_dir, self.delay_ms)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv(self.port),
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_s = time.perf_counter()

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Poll ``GET /ok`` until it answers 200; fail early if the process died."""
        assert self.proc is not None
        deadline = time.perf_counter() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.label} exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/ok")).status_code == 200:
                        self.ready_s = time.perf_counter() - self.started_s
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.label} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the process group this benchmark started (if still running)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for error messages."""
        if not self.log.exists():
            return "(no log)"
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(data_dir: Path, delay_ms: float) -> dict[str, str]:
    """The environment both servers get: offline engine only, no tracing, no phoning home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(
        TASKAGENT_DATA_DIR=str(data_dir),
        TASKAGENT_OFFLINE_TOKEN_DELAY_MS=f"{delay_ms:g}",
        LANGGRAPH_STRICT_MSGPACK="true",  # as `make run` and langgraph.json set it
        LANGSMITH_TRACING="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",  # langgraph-cli: no usage beacon
        LANGGRAPH_NO_VERSION_CHECK="true",  # langgraph-api: no PyPI version check
        PYTHONUNBUFFERED="1",
    )
    return env


def ours(workdir: Path, delay_ms: float) -> Server:
    """This server: ``taskagent serve`` (the editable install is importable from any cwd)."""
    return Server(
        key="ours",
        label="this server",
        argv=lambda port: [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        workdir=workdir,
        delay_ms=delay_ms,
    )


def langgraph_dev(workdir: Path, delay_ms: float, jobs: int | None = None) -> Server:
    """``langgraph dev`` on a copy of langgraph.json whose paths point into the repository.

    langgraph dev resolves the graph path and writes ``.langgraph_api/`` relative to its cwd;
    the copy lets it run in ``workdir`` so that folder is deleted with the temporary directory.
    ``jobs`` is passed as ``--n-jobs-per-worker`` (None: the stock default).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    config["dependencies"] = [str(ROOT / dep) for dep in config.get("dependencies", [])]
    config["graphs"] = {name: str(ROOT / spec) for name, spec in config["graphs"].items()}
    config_path = workdir / "langgraph.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    cli = str(Path(sys.executable).parent / "langgraph")
    extra = [] if jobs is None else ["--n-jobs-per-worker", str(jobs)]
    label = "langgraph dev" if jobs is None else f"langgraph dev --n-jobs-per-worker {jobs}"

    def argv(port: int) -> list[str]:
        return [
            cli,
            "dev",
            "--no-browser",
            "--no-reload",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--config",
            str(config_path),
            *extra,
        ]

    return Server(
        key="lgd" if jobs is None else f"lgd{jobs}",
        label=label,
        argv=argv,
        workdir=workdir,
        delay_ms=delay_ms,
    )


@contextlib.asynccontextmanager
async def running(servers: Sequence[Server]) -> Any:
    """Start the servers side by side, wait for all, and always stop them on the way out."""
    try:
        for server in servers:
            server.start()
        await asyncio.gather(*(server.wait_ready() for server in servers))
        yield servers
    finally:
        stop(servers)


def stop(servers: Sequence[Server], grace_s: float = 8.0) -> None:
    """SIGTERM every server, then SIGKILL those still running after `grace_s`."""
    for server in servers:
        server.send(signal.SIGTERM)
    deadline = time.perf_counter() + grace_s
    for server in servers:
        if server.proc is None:
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=max(0.1, deadline - time.perf_counter()))
        if server.proc.poll() is None:
            server.send(signal.SIGKILL)
            server.proc.wait(timeout=5)


# --------------------------------------------------------------------------- one stream


@dataclass
class Stream:
    """What one ``runs.stream`` call delivered, with times (s) from just before the POST."""

    server: str
    first_event: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    done: float | None = None
    tokens: int = 0
    events: dict[str, int] = field(default_factory=dict)
    text: str = ""
    error: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """Finished without an error and streamed at least one token."""
        return not self.error and self.done is not None and self.tokens > 0


def is_token(data: Any) -> bool:
    """A ``messages`` event carrying a non-empty chunk of an AI message.

    Tool results also arrive as ``messages`` events (a whole ToolMessage); they are not tokens.
    """
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], dict)):
        return False
    message = data[0]
    return message.get("type") in ("AIMessageChunk", "ai") and bool(message.get("content"))


def shape_problem(event: str, data: Any, index: int) -> str:
    """Why an SSE event does not look like the Agent Server protocol, or '' if it does."""
    if index == 0 and (event != "metadata" or not isinstance(data, dict) or "run_id" not in data):
        return f"first event is {event!r} {str(data)[:200]}, expected metadata with run_id"
    if event == "error":
        return f"error event: {str(data)[:300]}"
    if event == "messages" and not (isinstance(data, list) and len(data) == 2):
        return f"messages event is not a [message, metadata] pair: {str(data)[:200]}"
    if event == "updates" and not isinstance(data, dict):
        return f"updates event is not an object: {str(data)[:200]}"
    return ""


async def stream_turn(
    client: LangGraphClient, server: Server, thread_id: str, text: str, limit_s: float
) -> Stream:
    """Stream one turn and time it; failures and protocol problems are recorded, not raised.

    A stream that has not ended after `limit_s` is abandoned (what it delivered is kept).
    """
    result = Stream(server=server.key)
    try:
        await asyncio.wait_for(_consume(client, thread_id, text, result), limit_s)
    except TimeoutError:
        result.timed_out = True
        result.error = f"stream not finished after {limit_s:g} s"
    except Exception as exc:  # noqa: BLE001 - a failed stream is a measurement, not a crash
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    if not result.error and result.tokens == 0:
        result.error = f"no tokens streamed (events: {result.events})"
    return result


async def _consume(client: LangGraphClient, thread_id: str, text: str, result: Stream) -> None:
    payload: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()
    parts = client.runs.stream(thread_id, GRAPH_ID, input=payload, stream_mode=STREAM_MODE)
    async for index, part in aenumerate(parts):
        now = time.perf_counter() - started
        result.events[part.event] = result.events.get(part.event, 0) + 1
        if result.first_event is None:
            result.first_event = now
        problem = shape_problem(part.event, part.data, index)
        if problem and not result.error:
            result.error = problem
        if part.event == "messages" and is_token(part.data):
            result.tokens += 1
            result.text += str(part.data[0]["content"])
            result.last_token = now
            if result.first_token is None:
                result.first_token = now
    result.done = time.perf_counter() - started


async def aenumerate(items: Any) -> Any:
    """``enumerate`` for async iterators."""
    index = 0
    async for item in items:
        yield index, item
        index += 1


async def new_thread(client: LangGraphClient) -> str:
    """Create a thread and return its id."""
    thread = await client.threads.create()
    return str(thread["thread_id"])


def client_for(server: Server) -> LangGraphClient:
    """A stock SDK client for the server (no API key picked up from the environment)."""
    return get_client(url=server.url, api_key=None)


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    """Median, NaN when empty."""
    return statistics.median(values) if values else float("nan")


def p95(values: Sequence[float]) -> float:
    """95th percentile (inclusive method), NaN when empty."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def ms(seconds: float) -> str:
    """Seconds as a millisecond cell."""
    if seconds != seconds:  # NaN
        return "—"
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def div(a: float, b: float) -> float:
    """a / b, NaN when b is zero or either is NaN (a workload that failed has no ratio)."""
    return a / b if b and a == a and b == b else float("nan")


def ratio(value: float) -> str:
    """A ratio cell."""
    return "—" if value != value else f"{value:,.1f}×"


def verdict(ok: bool) -> str:
    """Met or missed, as turns.py writes it."""
    return "met" if ok else "MISSED"


@dataclass
class Notes:
    """Machine load samples and protocol anomalies seen along the way."""

    load: list[float] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    def sample_load(self) -> None:
        """Record the 1-minute load average."""
        self.load.append(os.getloadavg()[0])

    def check(self, workload: str, server: Server, request: str, stream: Stream) -> None:
        """Keep the first few failures per server and workload, with the request that failed."""
        if stream.ok:
            return
        prefix = f"{workload} {server.label}:"
        if sum(a.startswith(prefix) for a in self.anomalies) < 3:
            self.anomalies.append(
                f"{prefix} POST {server.url}/threads/<id>/runs/stream "
                f"input={request!r} stream_mode={STREAM_MODE} → {stream.error} "
                f"(events so far: {stream.events})"
            )


def rotations(servers: Sequence[Server], rounds: int) -> Iterator[tuple[int, Server]]:
    """(round, server) pairs, A B, B A, A B, ... so neither always goes first."""
    for number in range(rounds):
        shift = number % len(servers)
        for server in [*servers[shift:], *servers[:shift]]:
            yield number, server


# --------------------------------------------------------------------------- W1


async def first_event(
    servers: Sequence[Server], reps: int, warmups: int, notes: Notes
) -> dict[str, list[Stream]]:
    """W1: one turn on a fresh thread, interleaved; the warm-up rounds are dropped."""
    clients = {server.key: client_for(server) for server in servers}
    runs: dict[str, list[Stream]] = {server.key: [] for server in servers}
    try:
        for number, server in rotations(servers, warmups + reps):
            client = clients[server.key]
            thread_id = await new_thread(client)
            stream = await stream_turn(client, server, thread_id, W1_MESSAGE, STREAM_LIMIT_S)
            notes.check("W1", server, W1_MESSAGE, stream)
            if number >= warmups:
                runs[server.key].append(stream)
    finally:
        for client in clients.values():
            await client.aclose()
    return runs


def first_event_table(servers: Sequence[Server], runs: dict[str, list[Stream]]) -> list[str]:
    """Markdown for W1, with the langgraph dev / ours ratio row."""
    lines = [
        "| server | n (ok) | first event p50 | p95 | first token p50 | p95 | whole turn p50 |",
        "|---|---|---|---|---|---|---|",
    ]
    stats: dict[str, tuple[float, float, float, float, float]] = {}
    for server in servers:
        ok = [s for s in runs[server.key] if s.ok]
        events = [s.first_event for s in ok if s.first_event is not None]
        tokens = [s.first_token for s in ok if s.first_token is not None]
        whole = [s.done for s in ok if s.done is not None]
        stats[server.key] = (
            median(events),
            p95(events),
            median(tokens),
            p95(tokens),
            median(whole),
        )
        e50, e95, t50, t95, w50 = stats[server.key]
        lines.append(
            f"| {server.label} | {len(runs[server.key])} ({len(ok)}) | {ms(e50)} | {ms(e95)} "
            f"| {ms(t50)} | {ms(t95)} | {ms(w50)} |"
        )
    a, b = stats[servers[0].key], stats[servers[1].key]
    lines.append(
        f"| **{servers[1].label} / {servers[0].label}** | | **{ratio(div(b[0], a[0]))}** "
        f"| {ratio(div(b[1], a[1]))} | **{ratio(div(b[2], a[2]))}** "
        f"| {ratio(div(b[3], a[3]))} | {ratio(div(b[4], a[4]))} |"
    )
    return lines


# --------------------------------------------------------------------------- W4


@dataclass
class TokenRun:
    """W4 on one server: seeding time and the timed long answers."""

    seed_s: float = 0.0
    seed_errors: int = 0
    streams: list[Stream] = field(default_factory=list)

    def rates(self) -> list[float]:
        """Tokens per second of each ok stream, first token to last."""
        rates = []
        for s in self.streams:
            if s.ok and s.first_token is not None and s.last_token is not None:
                if s.last_token > s.first_token:
                    rates.append(s.tokens / (s.last_token - s.first_token))
        return rates


async def seed_tasks(
    client: LangGraphClient, server: Server, thread_id: str, count: int, notes: Notes
) -> tuple[float, int]:
    """Create `count` tasks with sequential ``runs.wait`` calls; return (seconds, failures)."""
    failures = 0
    started = time.perf_counter()
    for n in range(1, count + 1):
        request = W4_SEED.format(n=n)
        payload: dict[str, Any] = {"messages": [{"role": "user", "content": request}]}
        try:
            wait = client.runs.wait(thread_id, GRAPH_ID, input=payload)
            state: Any = await asyncio.wait_for(wait, STREAM_LIMIT_S)
            problem = (
                "" if isinstance(state, dict) and state.get("executed_calls") else "no tool ran"
            )
            response = str(state)[:300]
        except Exception as exc:  # noqa: BLE001 - counted and reported
            problem, response = "failed", f"{type(exc).__name__}: {exc}"[:300]
        if problem:
            failures += 1
            if failures == 1:
                notes.anomalies.append(
                    f"W4 seeding {server.label}: POST {server.url}/threads/<id>/runs/wait "
                    f"input={request!r} → {problem}: {response}"
                )
    return time.perf_counter() - started, failures


async def token_rate(
    servers: Sequence[Server], tasks: int, reps: int, notes: Notes
) -> dict[str, TokenRun]:
    """W4: seed the tasks on each server, then stream the long list answer, interleaved."""
    clients = {server.key: client_for(server) for server in servers}
    runs = {server.key: TokenRun() for server in servers}
    threads: dict[str, str] = {}
    try:
        for server in servers:
            client = clients[server.key]
            threads[server.key] = await new_thread(client)
            seconds, failures = await seed_tasks(client, server, threads[server.key], tasks, notes)
            runs[server.key].seed_s, runs[server.key].seed_errors = seconds, failures
        for _, server in rotations(servers, reps):
            client, thread_id = clients[server.key], threads[server.key]
            stream = await stream_turn(client, server, thread_id, W4_MESSAGE, STREAM_LIMIT_S)
            notes.check("W4", server, W4_MESSAGE, stream)
            runs[server.key].streams.append(stream)
    finally:
        for client in clients.values():
            await client.aclose()
    return runs


def token_table(servers: Sequence[Server], runs: dict[str, TokenRun], tasks: int) -> list[str]:
    """Markdown for W4."""
    lines = [
        f"| server | seeding: {tasks} × runs.wait | tokens per answer | answer lines "
        "| first → last token p50 | tokens/s p50 (range) | first token p50 |",
        "|---|---|---|---|---|---|---|",
    ]
    for server in servers:
        run = runs[server.key]
        ok = [s for s in run.streams if s.ok]
        rates = run.rates()
        spans = [s.last_token - s.first_token for s in ok if s.last_token and s.first_token]
        counts = sorted({s.tokens for s in ok})
        lines_per = sorted({s.text.count("\n") + 1 for s in ok})
        spread = f"{min(rates):,.0f}–{max(rates):,.0f}" if rates else "—"
        seed = f"{run.seed_s:.1f} s ({run.seed_s / tasks * 1000:,.0f} ms each)"
        if run.seed_errors:
            seed += f", {run.seed_errors} failed"
        lines.append(
            f"| {server.label} | {seed} | {'/'.join(map(str, counts)) or '—'} "
            f"| {'/'.join(map(str, lines_per)) or '—'} | {ms(median(spans))} "
            f"| {median(rates):,.0f} ({spread}) "
            f"| {ms(median([s.first_token for s in ok if s.first_token is not None]))} |"
        )
    return lines


# --------------------------------------------------------------------------- W3


@dataclass
class Burst:
    """W3 on one server: solo baseline and the concurrent streams."""

    baseline: list[float] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def timeouts(self) -> int:
        """Streams abandoned at the deadline."""
        return sum(s.timed_out for s in self.streams)

    @property
    def ok(self) -> list[Stream]:
        """Streams that completed cleanly."""
        return [s for s in self.streams if s.ok]

    def added(self) -> list[float]:
        """Completion time minus the solo baseline, per ok stream."""
        base = median(self.baseline)
        return [s.done - base for s in self.ok if s.done is not None]

    def throughput(self) -> float:
        """Completed turns per second of burst wall time."""
        return len(self.ok) / self.wall_s if self.wall_s else float("nan")


async def baseline(server: Server, solo: int, notes: Notes) -> list[float]:
    """The W3 turn alone on this server, `solo` times on fresh threads: completion times."""
    times: list[float] = []
    async with client_for(server) as client:
        for _ in range(solo):
            thread_id = await new_thread(client)
            stream = await stream_turn(client, server, thread_id, W1_MESSAGE, STREAM_LIMIT_S)
            notes.check("W3 baseline", server, W1_MESSAGE, stream)
            if stream.ok and stream.done is not None:
                times.append(stream.done)
    return times


async def burst(server: Server, streams: int, deadline_s: float, notes: Notes) -> Burst:
    """W3: `streams` clients each create a thread, then all stream one turn at once."""
    result = Burst()
    clients = [client_for(server) for _ in range(streams)]
    try:
        threads = await asyncio.gather(*(new_thread(client) for client in clients))

        started = time.perf_counter()
        turns = [
            stream_turn(client, server, thread_id, W1_MESSAGE, deadline_s)
            for client, thread_id in zip(clients, threads, strict=True)
        ]
        result.streams = await asyncio.gather(*turns)
        result.wall_s = time.perf_counter() - started
    finally:
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
    for stream in result.streams:
        notes.check("W3", server, W1_MESSAGE, stream)
    return result


async def concurrency(
    servers: Sequence[Server], streams: int, solo: int, deadline_s: float, notes: Notes
) -> dict[str, Burst]:
    """W3 on each server in turn: baseline just before, then the burst."""
    results: dict[str, Burst] = {}
    for server in servers:
        solo_times = await baseline(server, solo, notes)
        notes.sample_load()
        results[server.key] = await burst(server, streams, deadline_s, notes)
        results[server.key].baseline = solo_times
        notes.sample_load()
    return results


def burst_table(servers: Sequence[Server], bursts: dict[str, Burst], streams: int) -> list[str]:
    """Markdown for W3."""
    lines = [
        "| server | solo turn p50 | completed | errors (timeouts) | burst wall time "
        "| throughput | added latency p50 | p95 | slowest completion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for server in servers:
        run = bursts[server.key]
        added = run.added()
        slowest = max((s.done for s in run.ok if s.done is not None), default=float("nan"))
        errors = len(run.streams) - len(run.ok)
        lines.append(
            f"| {server.label} | {ms(median(run.baseline))} | {len(run.ok)}/{streams} "
            f"| {errors} ({run.timeouts}) | {ms(run.wall_s)} | {run.throughput():,.1f} turns/s "
            f"| {ms(median(added))} | {ms(p95(added))} | {ms(slowest)} |"
        )
    return lines


# --------------------------------------------------------------------------- report


def versions() -> str:
    """Installed versions of the packages that matter."""
    names = ["taskagent", "langgraph", "langgraph-api", "langgraph-runtime-inmem"]
    names += ["langgraph-cli", "langgraph-sdk"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


@dataclass
class Results:
    """Everything one run measured."""

    args: argparse.Namespace
    first: dict[str, list[Stream]]
    tokens: dict[str, TokenRun]
    bursts: dict[str, Burst]
    zero: list[Server]
    paced: list[Server]
    notes: Notes
    elapsed_s: float = 0.0
    w3_s: float = 0.0


def summary(res: Results) -> list[str]:
    """The ratio table: langgraph dev relative to ours, with targets where the issue sets one."""
    ours_key, lgd_key = res.zero[0].key, res.zero[1].key

    def w1(key: str, attr: str) -> float:
        values = [getattr(s, attr) for s in res.first[key] if s.ok]
        return median(values)

    first_ratio = div(w1(lgd_key, "first_event"), w1(ours_key, "first_event"))
    token_ratio = div(w1(lgd_key, "first_token"), w1(ours_key, "first_token"))
    rate_ratio = div(median(res.tokens[ours_key].rates()), median(res.tokens[lgd_key].rates()))
    lines = [
        "| ratio | measured | target | verdict |",
        "|---|---|---|---|",
        f"| W1 time to first SSE event, langgraph dev / ours (p50) | {ratio(first_ratio)} "
        f"| ≥ {FIRST_EVENT_TARGET:g}× | {verdict(first_ratio >= FIRST_EVENT_TARGET)} |",
        f"| W1 time to first token, langgraph dev / ours (p50) | {ratio(token_ratio)} | — | — |",
        f"| W4 streamed tokens/s, ours / langgraph dev (p50) | {ratio(rate_ratio)} | — | — |",
    ]
    ours_burst = res.bursts[res.paced[0].key]
    for server in res.paced[1:]:
        other = res.bursts[server.key]
        lines += [
            f"| W3 throughput, ours / {server.label} "
            f"| {ratio(div(ours_burst.throughput(), other.throughput()))} | — | — |",
            f"| W3 added latency p95, {server.label} / ours "
            f"| {ratio(div(p95(other.added()), p95(ours_burst.added())))} | — | — |",
        ]
    errors = len(ours_burst.streams) - len(ours_burst.ok)
    lines.append(
        f"| W3 errors on ours ({res.args.streams} streams) | {errors} | 0 "
        f"| {verdict(errors == 0)} |"
    )
    return lines


def report(res: Results) -> str:
    """Build the whole markdown report."""
    args, notes = res.args, res.notes
    ready = "; ".join(
        ", ".join(f"{s.label} {s.ready_s:.1f} s" for s in group) for group in (res.zero, res.paced)
    )
    lines = [
        "# This server vs `langgraph dev`",
        "",
        "Same graph (`graph/builder.py:graph`, id `agent`), same deterministic offline engine,",
        "same stock `langgraph_sdk` calls: `threads.create`, then `runs.stream(thread, 'agent',",
        "stream_mode=['updates', 'messages-tuple'])`. Times run from just before the POST. A",
        "token is a `messages` event carrying a non-empty AI chunk (the tool result, also sent",
        "as a `messages` event, is not counted). Each server has its own data dir and cwd.",
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs (servers and clients share",
        f"them), 1-minute load average {min(notes.load):.2f}–{max(notes.load):.2f} during the",
        f"run, total run {res.elapsed_s:.0f} s. Start-up to a first `GET /ok` (servers started",
        f"side by side): {ready}.",
        f"Versions: {versions()}.",
        "",
        f"## W1 — time to first event and first token (zero pacing, fresh thread, "
        f"{args.reps} interleaved repetitions after {args.warmups} warm-up rounds)",
        "",
        f"Message: “{W1_MESSAGE}” (a tool call, the tool result, a one-line answer).",
        "",
        *first_event_table(res.zero, res.first),
        "",
        f"## W4 — streamed tokens per second (zero pacing, one stream, {args.token_reps} "
        "interleaved repetitions)",
        "",
        f"{args.tasks} tasks seeded on one thread with sequential `runs.wait`",
        f"(“{W4_SEED.format(n='N')}”), then “{W4_MESSAGE}” streamed on that thread: a header",
        "and one line per task, up to the tool's default limit of 50 (the W1 tasks are listed",
        "too). Rate = tokens / (last token − first token).",
        "",
        *token_table(res.zero, res.tokens, args.tasks),
        "",
        f"## W3 — {args.streams} concurrent streams ({args.delay_ms:g} ms per streamed word)",
        "",
        f"{args.streams} SDK clients, each with its own connection and thread, stream the W1",
        f"turn at once (`asyncio.gather`). Baseline = median of {args.solo} solo turns on that",
        "server just before; added latency = completion − baseline. Throughput = completed",
        f"turns / burst wall time. A stream is abandoned after {args.deadline:g} s. The servers",
        f"go one after another; the whole part (start-up included) took {res.w3_s:.0f} s.",
        'Stock `langgraph dev` runs one background job at a time (it starts "1 background',
        'workers" unless `--n-jobs-per-worker` is given, although `--help` says 10), so its',
        f"{args.streams} turns queue"
        + (f"; the last row gives it {args.lgd_jobs} job slots." if args.lgd_jobs else "."),
        "",
        *burst_table(res.paced, res.bursts, args.streams),
        "",
        "## Summary",
        "",
        *summary(res),
        "",
    ]
    if notes.anomalies:
        lines += ["## Anomalies", "", *(f"- {a}" for a in notes.anomalies), ""]
    else:
        lines += [
            "No anomalies: every stream opened with `metadata`, carried no `error` event,",
            "streamed tokens and ended.",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> str:
    """Start the servers, run W1, W4 (zero pacing) and W3 (paced), return the report."""
    started = time.perf_counter()
    notes = Notes()
    notes.sample_load()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        root = Path(tmp)
        zero = [ours(root / "ours", 0), langgraph_dev(root / "lgd", 0)]
        async with running(zero):
            print(f"zero pacing: {', '.join(f'{s.label} at {s.url}' for s in zero)}", flush=True)
            first = await first_event(zero, args.reps, args.warmups, notes)
            notes.sample_load()
            print("W1 done", flush=True)
            tokens = await token_rate(zero, args.tasks, args.token_reps, notes)
            notes.sample_load()
            print("W4 done", flush=True)
        w3_started = time.perf_counter()
        paced = [
            ours(root / "ours-paced", args.delay_ms),
            langgraph_dev(root / "lgd-paced", args.delay_ms),
        ]
        if args.lgd_jobs:
            paced.append(langgraph_dev(root / "lgd-jobs", args.delay_ms, args.lgd_jobs))
        async with running(paced):
            print(f"paced: {', '.join(f'{s.label} at {s.url}' for s in paced)}", flush=True)
            bursts = await concurrency(paced, args.streams, args.solo, args.deadline, notes)
            print("W3 done", flush=True)
        results = Results(args, first, tokens, bursts, zero, paced, notes)
        results.w3_s = time.perf_counter() - w3_started
        results.elapsed_s = time.perf_counter() - started
        return report(results)


def cli() -> None:
    """Parse arguments, run, print the tables and save them under bench/results/."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=20, help="W1 repetitions per server (20)")
    parser.add_argument("--warmups", type=int, default=2, help="W1 warm-up rounds (2)")
    parser.add_argument("--tasks", type=int, default=40, help="W4 tasks to seed (40)")
    parser.add_argument("--token-reps", type=int, default=5, help="W4 streams per server (5)")
    parser.add_argument("--streams", type=int, default=100, help="W3 concurrent streams (100)")
    parser.add_argument("--solo", type=int, default=3, help="W3 solo turns for the baseline (3)")
    parser.add_argument("--delay-ms", type=float, default=20, help="W3 pacing per word (20)")
    parser.add_argument("--deadline", type=float, default=35, help="W3 per-stream limit, s (35)")
    parser.add_argument(
        "--lgd-jobs",
        type=int,
        default=100,
        help="also run W3 on langgraph dev --n-jobs-per-worker N (100; 0: skip)",
    )
    args = parser.parse_args()
    if args.reps < 2 or args.token_reps < 1 or args.solo < 1 or args.streams < 1:
        raise SystemExit("--reps must be ≥ 2; --token-reps, --solo and --streams ≥ 1")
    text = asyncio.run(main(args))
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    print(f"(written to {RESULTS})")


if __name__ == "__main__":
    cli()
