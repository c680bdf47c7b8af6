"""The servers under test as processes: this server and `langgraph dev`, same graph and model.

Each server runs in its own temporary working directory (no ``.env`` is read, and
``langgraph dev``'s ``.langgraph_api/`` folder never lands in the repository) with its own
``TASKAGENT_DATA_DIR``, the offline engine as its only model and the given pacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Variables that would give either server another model tier, tracing or a different config.
SCRUBBED_PREFIXES = ("OLLAMA_", "OPENAI_", "TASKAGENT_", "LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_")


@dataclass(frozen=True)
class Pacing:
    """How fast the scripted model answers: time to the first chunk, then time per chunk."""

    name: str
    first_ms: float
    token_ms: float

    def ideal_s(self, chunks_per_call: Sequence[int]) -> float:
        """Seconds the model alone spends on calls that streamed these numbers of chunks."""
        total = 0.0
        for chunks in chunks_per_call:
            if chunks <= 0:
                continue
            first = self.first_ms or self.token_ms
            total += (first + self.token_ms * (chunks - 1)) / 1000
        return total

    def describe(self) -> str:
        """The pacing in words."""
        if not self.first_ms and not self.token_ms:
            return "zero delay"
        rate = 1000 / self.token_ms if self.token_ms else float("inf")
        return f"{self.first_ms:g} ms to the first chunk, then {rate:g} chunks/s"


ZERO = Pacing("zero", 0, 0)
HOSTED = Pacing("hosted", 300, 20)


@dataclass
class Server:
    """One server process under test: how to start it, where it lives, its log."""

    key: str
    label: str
    argv: Callable[[int], list[str]]
    workdir: Path
    pacing: Pacing
    env: dict[str, str] = field(default_factory=dict)
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

    @property
    def pid(self) -> int:
        """The process id (the server itself: both commands exec Python directly)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start the process in its own session (so a Ctrl-C reaches only the benchmark)."""
        self.port = free_port()
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv(self.port),
                cwd=self.workdir,
                env={**server_env(data_dir, self.pacing), **self.env},
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


def server_env(data_dir: Path, pacing: Pacing) -> dict[str, str]:
    """The environment both servers get: offline engine only, no tracing, no phoning home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(
        TASKAGENT_DATA_DIR=str(data_dir),
        TASKAGENT_OFFLINE_TOKEN_DELAY_MS=f"{pacing.token_ms:g}",
        TASKAGENT_OFFLINE_FIRST_TOKEN_DELAY_MS=f"{pacing.first_ms:g}",
        TASKAGENT_LOG_LEVEL="WARNING",
        # Budgets stay checked but unlimited: thousands of benchmark turns by one local user
        # would spend the default daily budget.
        TASKAGENT_BUDGET_TOKENS_PER_THREAD="0",
        TASKAGENT_BUDGET_TOKENS_PER_USER_DAY="0",
        TASKAGENT_BUDGET_USD_PER_USER_DAY="0",
        LANGGRAPH_STRICT_MSGPACK="true",  # as `make run` and langgraph.json set it
        LANGSMITH_TRACING="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",  # langgraph-cli: no usage beacon
        LANGGRAPH_NO_VERSION_CHECK="true",  # langgraph-api: no PyPI version check
        PYTHONUNBUFFERED="1",
    )
    return env


def ours(
    workdir: Path, pacing: Pacing, *, probes: bool = False, workers: int | None = None
) -> Server:
    """This server: ``taskagent serve`` (the editable install is importable from any cwd).

    `probes` switches on the wall-clock probes; `workers` passes ``--workers N``.
    """
    extra = [] if workers is None or workers == 1 else ["--workers", str(workers)]
    label = (
        "this server"
        if workers is None
        else f"this server, {workers} worker{'s' if workers > 1 else ''}"
    )
    return Server(
        key="ours" if workers is None else f"ours-w{workers}",
        label=label,
        argv=lambda port: [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(port),
            *extra,
        ],  # fmt: skip
        workdir=workdir,
        pacing=pacing,
        env={"TASKAGENT_WALLCLOCK_PROBES": "true"} if probes else {},
    )


def langgraph_dev(workdir: Path, pacing: Pacing, jobs: int | None = None) -> Server:
    """``langgraph dev`` on a copy of langgraph.json whose paths point into the repository.

    langgraph dev resolves the graph path and writes ``.langgraph_api/`` relative to its cwd;
    the copy lets it run in ``workdir`` so that folder is deleted with the temporary directory.
    ``jobs`` is passed as ``--n-jobs-per-worker`` (None: the stock default, one run at a time).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    config["dependencies"] = [str(ROOT / dep) for dep in config.get("dependencies", [])]
    config["graphs"] = {name: str(ROOT / spec) for name, spec in config["graphs"].items()}
    config_path = workdir / "langgraph.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    extra = [] if jobs is None else ["--n-jobs-per-worker", str(jobs)]
    label = "langgraph dev" if jobs is None else f"langgraph dev --n-jobs-per-worker {jobs}"

    def argv(port: int) -> list[str]:
        return [
            str(Path(sys.executable).parent / "langgraph"),
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

    return Server(key="lgd", label=label, argv=argv, workdir=workdir, pacing=pacing)


@contextlib.asynccontextmanager
async def running(servers: Sequence[Server]) -> AsyncIterator[Sequence[Server]]:
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
