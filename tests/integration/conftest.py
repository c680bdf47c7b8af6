import asyncio
import atexit
import contextlib
import functools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg
import pytest

from scripts.local_pg import LocalPostgres
from scripts.rr_proxy import RoundRobin
from tools.postgres import translate

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh install: no model configured, data under `data_dir`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OLLAMA_", "OPENAI_", "TASKAGENT_")) and k != "DATABASE_URL"
    }
    env.update({"TASKAGENT_DATA_DIR": str(data_dir), "LANGGRAPH_STRICT_MSGPACK": "true", **extra})
    return env


class LiveServer:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        ready_s: float = 30,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), *args],
            cwd=REPO,
            env=offline_env(data_dir, **(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Drain the server's output as it comes: a full pipe would block the server.
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited: {self.proc.stdout.read() if self.proc.stdout else ''}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start within {ready_s:g} s")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no flushing, like a crash."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> None:
        """SIGTERM the server and wait for its graceful shutdown to end."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        return "".join(self.output)


class Replicas(LiveServer):
    """Two replicas on one PostgreSQL database behind a round-robin balancer, as one server.

    What the suites see of a server (`url`, `stop`, `output`) is the balancer's and the
    replicas' together; `data_dir` is the first replica's (nothing the service keeps is
    there: it is all in the database).
    """

    def __init__(
        self,
        data_dir: Path,
        database_url: str,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        count: int = 2,
        ready_s: float = 30,
    ) -> None:
        self.database_url = database_url
        env = {**(env or {}), "DATABASE_URL": database_url}
        self.replicas = [
            LiveServer(
                data_dir.with_name(f"{data_dir.name}-r{n}"), env=env, args=args, ready_s=ready_s
            )
            for n in range(count)
        ]
        self.data_dir = data_dir
        self.proc = self.replicas[0].proc
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        balancer = RoundRobin([replica.port for replica in self.replicas])
        self._balancing = self._loop.create_task(balancer.serve(self.port))
        self._proxy = threading.Thread(target=self._balance, daemon=True)
        self._proxy.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.05)

    def _balance(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._balancing)

    @property
    def output(self) -> list[str]:  # type: ignore[override]
        return [line for replica in self.replicas for line in replica.output]

    def kill(self) -> None:
        for replica in self.replicas:
            replica.kill()

    def terminate(self, timeout: float = 20) -> None:
        for replica in self.replicas:
            replica.proc.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            replica.proc.wait(timeout=timeout)

    def stop(self) -> str:
        logs = "".join(replica.stop() for replica in self.replicas)
        if self._proxy.is_alive():
            self._loop.call_soon_threadsafe(self._balancing.cancel)
            self._proxy.join(timeout=5)
        return logs


def on_postgres() -> bool:
    """Whether the suites run against two replicas on PostgreSQL (`make test-pg`)."""
    return os.environ.get("TASKAGENT_TEST_BACKEND") == "postgres"


@functools.cache
def _suite_postgres() -> LocalPostgres:
    directory = Path(tempfile.mkdtemp(prefix="taskagent-pg-"))
    server = LocalPostgres(directory).start()
    atexit.register(server.stop)
    return server


def fresh_database() -> str | None:
    """For a store a test opens itself: a new PostgreSQL database's URL on the postgres
    backend (`make test-pg`), None (the store's SQLite file) otherwise."""
    if on_postgres():
        return _suite_postgres().create_database(f"t_{uuid.uuid4().hex[:16]}")
    return None


def serve(
    data_dir: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    database_url: str | None = None,
    ready_s: float = 30,
) -> LiveServer:
    """The server a protocol suite talks to: one process on SQLite, or (`make test-pg`) two
    replicas on a PostgreSQL database (`database_url`, or a new one) behind a balancer."""
    url = database_url or fresh_database()
    if url is not None:
        return Replicas(data_dir, url, env, args, ready_s=ready_s)
    return LiveServer(data_dir, env=env, args=args, ready_s=ready_s)


def serve_again(
    server: LiveServer,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    ready_s: float = 30,
) -> LiveServer:
    """A restart of `server` (stopped): a new server on the same data dir, or new replicas
    on the same database."""
    return serve(server.data_dir, env, args, getattr(server, "database_url", None), ready_s)


class HasDataDir(Protocol):
    """A server whose stores a test reads: a LiveServer, Replicas, or `langgraph dev`."""

    data_dir: Path


def db_rows(
    server: HasDataDir, store_file: str, sql: str, params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """The rows `sql` (SQLite's dialect) reads from what the server keeps: `store_file` in
    its data dir, read-only, or on replicas the PostgreSQL database they share."""
    if isinstance(server, Replicas):
        with psycopg.connect(server.database_url, autocommit=True) as conn:
            return conn.execute(translate(sql, bind=bool(params)), params or None).fetchall()
    uri = f"file:{server.data_dir / store_file}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = serve(tmp_path / "data")
    yield server
    server.stop()
