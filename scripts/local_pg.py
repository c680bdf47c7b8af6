"""A throwaway PostgreSQL on loopback, from Debian's packages, in a scratch directory.

For the tests and `make run-pg`: installs the `postgresql` package when no server binaries
are found (root, `apt-get update` first), creates a cluster owned by the `postgres` system
user (the server refuses to run as root), listens on 127.0.0.1 only with trust
authentication for local connections, and is stopped (and may be restarted) on request.

    python -m scripts.local_pg DIR PORT     # start, print the DATABASE_URL, stay up until ^C
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVER_USER = "postgres"
SUPERUSER = "taskagent"
INSTALL_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 60.0


def server_bin_dir() -> tuple[Path | None, str]:
    """Return PostgreSQL's server binaries, installing Debian's package if missing, or why not."""
    found = _installed()
    if found is not None:
        return found, ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "PostgreSQL is not installed and apt-get is not available as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
        if done.returncode != 0:
            return None, f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    found = _installed()
    return (found, "") if found else (None, "apt-get installed postgresql but no initdb found")


def _installed() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """One PostgreSQL server in `directory`, listening on 127.0.0.1:`port`."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        bin_dir, why = server_bin_dir()
        if bin_dir is None:
            raise RuntimeError(why)
        self.bin_dir = bin_dir
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # The server refuses to run as root; as root it runs as Debian's postgres user.
        account = pwd.getpwnam(SERVER_USER) if os.geteuid() == 0 else None
        self._user = account.pw_uid if account else None
        self._group = account.pw_gid if account else None

    def url(self, database: str = "postgres") -> str:
        """The DATABASE_URL of `database` on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> LocalPostgres:
        """Create the cluster on first use, start the server and wait until it accepts queries."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._user is not None and self._group is not None:
            os.chown(self.directory, self._user, self._group)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            )
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - lives with the server
        self.proc = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.directory),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._user,
            group=self._group,
        )
        log.close()
        self._wait_ready()
        return self

    def create_database(self, name: str) -> str:
        """Create an empty database and return its DATABASE_URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL command with psql and return what it printed."""
        done = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(database),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self, *, fast: bool = True) -> None:
        """Stop the server (fast shutdown: sessions are cut, committed data is kept)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT if fast else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would (it recovers from its WAL on start)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # Orphaned backends keep the shared memory: end them too, or a restart is refused.
        subprocess.run(["pkill", "-9", "-f", f"postgres.*{self.data}"], check=False)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.directory / "server.log").read_text(errors="replace")
                raise RuntimeError(f"PostgreSQL exited at start: {log.strip()[-500:]}")
            try:
                self.psql("SELECT 1")
                return
            except RuntimeError:
                time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not accept queries within {READY_TIMEOUT_S:g} s")

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            command, capture_output=True, text=True, user=self._user, group=self._group
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip()[-500:]}")


def main() -> None:
    """Start a server in DIR on PORT and keep it up until interrupted."""
    directory, port = Path(sys.argv[1]), int(sys.argv[2])
    server = LocalPostgres(directory, port).start()
    print(server.url(), flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
