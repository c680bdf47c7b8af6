"""The real server as a child process: start on a data dir, SIGKILL, restart on the same port.

Unlike the test suite's `LiveServer`, this one is tuned for hundreds of restarts: readiness
is polled every 50 ms, output goes to a log file (no reader thread), the process can be
started through `faults.killpoint` (kill points armed by a file), and it can run under a
file-size limit (the disk-full fallback when no small filesystem can be mounted).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 60.0
# Replacement processes kept importing ahead of time (imports take seconds on a busy machine).
STANDBYS = 2


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh install's environment (no model configured) with data under `data_dir`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OLLAMA_", "OPENAI_", "TASKAGENT_", "FAULTS_"))
    }
    env.update(
        {
            "TASKAGENT_DATA_DIR": str(data_dir),
            "LANGGRAPH_STRICT_MSGPACK": "true",
            "TASKAGENT_LOG_LEVEL": "WARNING",
            **(extra or {}),
        }
    )
    return env


def _no_file_size_signal() -> None:
    # SIGXFSZ would kill the server on the first write past the limit; ignored, the write
    # fails with EFBIG instead and SQLite reports it, as it would a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


class ServerProcess:
    """`python -m server.cli.main serve` (or `faults.killpoint`) on 127.0.0.1:`port`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        killpoints: bool = False,
        no_sigxfsz: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(data_dir, env)
        self.log_path = log_path or data_dir.parent / f"server-{self.port}.log"
        self.killpoints = killpoints
        self.no_sigxfsz = no_sigxfsz
        self.proc: subprocess.Popen[bytes] | None = None
        self._standbys: list[subprocess.Popen[bytes]] = []
        self.starts = 0
        self.start_seconds: list[float] = []

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def _spawn(self, module: str, extra_env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", module, "serve", "--port", str(self.port)],
                cwd=REPO,
                env={**self.env, **(extra_env or {})},
                stdin=subprocess.PIPE if module == "faults.killpoint" else None,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_no_file_size_signal if self.no_sigxfsz else None,
            )

    def start(self, *, extra_env: dict[str, str] | None = None) -> None:
        """Start the server and wait until `/health` answers.

        With kill points, the replacement process is started ahead of time: it does its
        imports, then waits for a line on stdin before it opens the data dir and serves. A
        restart after a kill then costs what recovery costs, not the imports. The data dir
        is opened only after "go", so a replacement never sees the data before the kill.
        """
        module = "faults.killpoint" if self.killpoints else "server.cli"
        proc = self._standbys.pop(0) if self._standbys and extra_env is None else None
        proc = proc or self._spawn(module, extra_env)
        started = time.monotonic()
        if proc.stdin is not None:
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        self.proc = proc
        self.starts += 1
        self.wait_ready(started)
        self.start_seconds.append(time.monotonic() - started)
        while self.killpoints and len(self._standbys) < STANDBYS:
            self._standbys.append(self._spawn(module, None))

    def wait_ready(self, started: float) -> None:
        """Poll `/health` until it answers 200; raise if the process exits or times out."""
        assert self.proc is not None
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() - started < READY_TIMEOUT_S:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.proc.returncode}; see {self.log_path}"
                    )
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"server not ready within {READY_TIMEOUT_S:g} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no flush, like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def wait_dead(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the server to die by itself; return whether it did."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        self._reap()
        return True

    def stop(self) -> None:
        """SIGTERM the server and wait for its graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait()

    def close(self) -> None:
        """Stop the server and the standby replacement, if any."""
        self.stop()
        for standby in self._standbys:
            assert standby.stdin is not None
            standby.stdin.close()  # no "go": it exits without serving
        for standby in self._standbys:
            try:
                standby.wait(timeout=30)
            except subprocess.TimeoutExpired:
                standby.kill()
                standby.wait()
        self._standbys.clear()

    def limit_file_size(self, max_bytes: int | None) -> None:
        """Cap (or, with None, uncap) the size any file of the server may grow to."""
        _, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        soft = hard if max_bytes is None else max_bytes
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (soft, hard))


def sqlite_files(data_dir: Path) -> list[Path]:
    """Every SQLite database in the data dir."""
    return sorted(data_dir.glob("*.sqlite"))


def integrity(data_dir: Path) -> dict[str, str]:
    """Run `PRAGMA integrity_check` on every database (read-only); name → result."""
    results: dict[str, str] = {}
    for path in sqlite_files(data_dir):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            results[path.name] = "; ".join(str(row[0]) for row in rows)
        except sqlite3.Error as exc:
            results[path.name] = f"error: {exc}"
        finally:
            conn.close()
    return results


def integrity_failures(data_dir: Path) -> list[str]:
    """The databases whose integrity check is not "ok", with what it said."""
    return [f"{name}: {result}" for name, result in integrity(data_dir).items() if result != "ok"]


def pg_integrity_failures(url: str) -> list[str]:
    """Amcheck's verdict on every B-tree index of the database (its tables' structure)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        failures = []
        for (index,) in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE a.amname = 'btree' AND n.nspname = 'public'"
        ).fetchall():
            try:
                conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
            except psycopg.Error as exc:
                failures.append(f"{index}: {str(exc).strip()}")
        return failures
