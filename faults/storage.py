"""Storage faults: a database locked by another process, and a full disk.

Both are injected from outside the server, as they happen in production: another OS process
holds `BEGIN EXCLUSIVE` on a database for longer than the server's `busy_timeout`, or the
data dir's filesystem fills up. Expected: requests that must write get 503 with
`Retry-After` and a sentence (never a 500, never a hang), reads are still served, no
database is harmed, and once the lock is released or space is freed the service recovers
by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from faults.client import chat_body, read_events
from faults.server import ServerProcess, integrity_failures

BUSY_TIMEOUT_MS = "200"
HANG_S = 5.0  # an answer slower than this counts as a hang
TMPFS_SIZE = "8m"
FSIZE_LIMIT = 64 * 1024

LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
conn.close()
"""


@dataclass
class Probe:
    """One request made while the fault was active, and how it was answered."""

    what: str
    status: int
    seconds: float
    retry_after: str | None = None
    detail: str = ""
    # A stream that started before the fault hit ends with this error event instead of a 503.
    error_event: str | None = None

    @property
    def clean_refusal(self) -> bool:
        """A 503 with Retry-After, or a stream ending in a StorageUnavailable error event."""
        return (self.status == 503 and bool(self.retry_after)) or (
            self.error_event == "StorageUnavailable"
        )


@dataclass
class StorageReport:
    """The counts of one storage fault."""

    name: str
    mechanism: str = ""
    writes: int = 0
    writes_503: int = 0
    writes_clean: int = 0
    server_errors: int = 0
    hangs: int = 0
    reads: int = 0
    reads_served: int = 0
    turns_before_failure: int = 0
    stream_error_events: int = 0
    inflight_ended: str = ""
    sqlite_said: list[str] = field(default_factory=list)
    recovered_after_s: float | None = None
    follow_ups: int = 0
    follow_ups_ok: int = 0
    integrity_failures: int = 0
    max_seconds: float = 0.0
    probes: list[Probe] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def zero(self) -> bool:
        """Whether every fault-time write got a clean 503 and everything recovered."""
        return (
            self.writes > 0
            and self.writes_clean == self.writes
            and self.server_errors == 0
            and self.hangs == 0
            and self.reads_served == self.reads
            and self.recovered_after_s is not None
            and self.follow_ups_ok == self.follow_ups
            and self.integrity_failures == 0
        )

    def add(self, probe: Probe, *, write: bool) -> None:
        """Count one probe."""
        self.probes.append(probe)
        self.max_seconds = max(self.max_seconds, probe.seconds)
        if probe.status >= 500 and probe.status != 503:
            self.server_errors += 1
        if probe.seconds > HANG_S:
            self.hangs += 1
        if write:
            self.writes += 1
            self.writes_503 += probe.status == 503
            self.writes_clean += probe.clean_refusal
        else:
            self.reads += 1
            self.reads_served += probe.status == 200
        if (write and not probe.clean_refusal) or (not write and probe.status != 200):
            self.problems.append(f"{probe.what}: {probe.status} {probe.detail[:200]}")


async def probe(http: httpx.AsyncClient, what: str, method: str, path: str, **kw: Any) -> Probe:
    """Make one request and record status, time, Retry-After and detail."""
    started = time.monotonic()
    try:
        response = await http.request(method, path, timeout=HANG_S * 4, **kw)
    except httpx.TimeoutException:
        return Probe(what, 0, time.monotonic() - started, detail="no answer")
    detail = response.text
    return Probe(
        what,
        response.status_code,
        time.monotonic() - started,
        response.headers.get("retry-after"),
        detail,
    )


async def add_reads(http: httpx.AsyncClient, report: StorageReport, thread: str) -> None:
    """Probe the read routes a user needs while storage is faulty: they should still answer."""
    report.add(await probe(http, "GET /chat/threads", "GET", "/chat/threads"), write=False)
    path = f"/chat/threads/{thread}/messages"
    report.add(await probe(http, "GET /chat/threads/{id}/messages", "GET", path), write=False)
    report.add(await probe(http, "GET /health", "GET", "/health"), write=False)


async def stream_probe(http: httpx.AsyncClient, what: str, body: dict[str, Any]) -> Probe:
    """POST /chat/stream: a 503 up front, or the error event the stream ends with."""
    started = time.monotonic()
    async with http.stream("POST", "/chat/stream", json=body, timeout=HANG_S * 4) as response:
        if response.status_code != 200:
            await response.aread()
            return Probe(
                what,
                response.status_code,
                time.monotonic() - started,
                response.headers.get("retry-after"),
                response.text,
            )
        last: Any = None
        async for event in read_events(response):
            last = event
    error = last.data.get("error") if last is not None and last.event == "error" else None
    return Probe(what, 200, time.monotonic() - started, detail=repr(last), error_event=error)


async def turn(http: httpx.AsyncClient, message: str, thread_id: str | None = None) -> str:
    """One /chat turn that must succeed; return its thread id."""
    reply = await http.post("/chat", json=chat_body(message, thread_id), timeout=60)
    reply.raise_for_status()
    return str(reply.json()["thread_id"])


# --- a database locked by another process -----------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold `BEGIN EXCLUSIVE` on `path` from another OS process while inside."""
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdin is not None
        if locker.stdout.readline().strip() != "locked":
            raise RuntimeError(f"could not lock {path}")
        yield
    finally:
        if locker.stdin is not None:
            locker.stdin.write("\n")
            locker.stdin.close()
        locker.wait(timeout=10)


async def recover(http: httpx.AsyncClient, report: StorageReport, threads: list[str]) -> None:
    """After the fault: time to the first successful write, follow-ups, integrity."""
    released = time.monotonic()
    while time.monotonic() - released < 30:
        reply = await http.post("/chat", json=chat_body("list my tasks", threads[0]), timeout=60)
        if reply.status_code == 200:
            report.recovered_after_s = time.monotonic() - released
            break
        await asyncio.sleep(0.2)
    for thread_id in threads:
        report.follow_ups += 1
        try:
            await turn(http, "list my tasks", thread_id)
            report.follow_ups_ok += 1
        except httpx.HTTPError as exc:
            report.problems.append(f"follow-up on {thread_id}: {exc}")


async def lock_fault(database: str, workdir: Path, *, writes: int = 3) -> StorageReport:
    """Lock `database` (tasks or runs) from another process; probe; release; recover."""
    report = StorageReport(
        f"{database}.sqlite locked",
        mechanism=f"another process holds BEGIN EXCLUSIVE; busy_timeout {BUSY_TIMEOUT_MS} ms",
    )
    data_dir = workdir / "data"
    server = ServerProcess(
        data_dir,
        env={
            "TASKAGENT_BUSY_TIMEOUT_MS": BUSY_TIMEOUT_MS,
            "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "20",
        },
        log_path=workdir / "server.log",
    )
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            thread = await turn(http, "Create a task called Lock warmup, high priority")
            # A turn in flight when the lock is taken: it must end, with a clear error event.
            inflight_body = chat_body("Create a task called Lock inflight, high priority")
            async with http.stream("POST", "/chat/stream", json=inflight_body) as response:
                response.raise_for_status()
                events = read_events(response)
                first = await anext(events)
                inflight_thread = str(first.data["thread_id"])
                with locked(data_dir / f"{database}.sqlite"):
                    started = time.monotonic()
                    last = first
                    async for event in events:
                        last = event
                    seconds = time.monotonic() - started
                    report.inflight_ended = (
                        str(last.data.get("error")) if last.event == "error" else last.event
                    )
                    report.stream_error_events += (
                        last.event == "error" and last.data.get("error") == "StorageUnavailable"
                    )
                    if last.event not in ("error", "done") or seconds > HANG_S * 4:
                        report.problems.append(f"in-flight turn ended with {last}")
                    for index in range(writes):
                        body = chat_body(f"Create a task called Locked {index}, low priority")
                        report.add(
                            await probe(http, "POST /chat", "POST", "/chat", json=body), write=True
                        )
                    report.add(
                        await stream_probe(
                            http, "POST /chat/stream", chat_body("list my tasks", thread)
                        ),
                        write=True,
                    )
                    await add_reads(http, report, thread)
            await recover(http, report, [thread, inflight_thread])
    finally:
        await asyncio.to_thread(server.stop)
    report.integrity_failures = len(integrity_failures(data_dir))
    report.sqlite_said = sqlite_said(server.log_path)
    return report


# --- a full disk -------------------------------------------------------------------------------


def mount_small_fs(mountpoint: Path) -> bool:
    """Mount an 8 MiB tmpfs at `mountpoint`; False when not permitted (unprivileged CI)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mountpoint)],
        capture_output=True,
    )
    return done.returncode == 0


def unmount(mountpoint: Path) -> None:
    """Unmount what `mount_small_fs` mounted."""
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def fill(path: Path) -> int:
    """Write `path` until the filesystem is full; return the bytes written."""
    written = 0
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # Big writes first, then small ones: a few free KiB would let small writes through.
        for size in (1 << 16, 1 << 12, 1 << 9):
            chunk = b"\0" * size
            while True:
                try:
                    written += os.write(descriptor, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(descriptor)
    return written


async def disk_full_fault(
    workdir: Path, *, max_turns: int = 40, allow_mount: bool = True
) -> StorageReport:
    """Fill the data dir's filesystem; probe; free the space; recover."""
    mountpoint = workdir / "disk"
    mounted = allow_mount and mount_small_fs(mountpoint)
    report = StorageReport(
        "disk full",
        mechanism=(
            f"data dir on a {TMPFS_SIZE[:-1]} MiB tmpfs (`mount -t tmpfs -o size={TMPFS_SIZE}`),"
            " filled by a filler file"
            if mounted
            else f"mount not permitted: RLIMIT_FSIZE {FSIZE_LIMIT // 1024} KiB set on the"
            " server (SIGXFSZ ignored), so each write past it fails with EFBIG"
        ),
    )
    data_dir = mountpoint / "data"
    server = ServerProcess(
        data_dir,
        env={"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "0"},
        log_path=workdir / "server.log",
        no_sigxfsz=not mounted,
    )
    filler = mountpoint / "filler"
    try:
        await asyncio.to_thread(server.start)
        async with httpx.AsyncClient(base_url=server.url) as http:
            thread = await turn(http, "Create a task called Disk warmup, high priority")
            if mounted:
                await asyncio.to_thread(fill, filler)
            else:
                server.limit_file_size(FSIZE_LIMIT)
            # SQLite writes into room its files already have until it needs more: count the
            # turns that still fit, then every write must be a clean 503.
            for index in range(max_turns):
                body = chat_body(f"Create a task called Full {index}, low priority", thread)
                attempt = await probe(http, "POST /chat", "POST", "/chat", json=body)
                if attempt.status == 200:
                    report.turns_before_failure += 1
                    continue
                report.add(attempt, write=True)
                break
            for index in range(2):
                body = chat_body(f"Create a task called Still full {index}, low priority")
                report.add(await probe(http, "POST /chat", "POST", "/chat", json=body), write=True)
            report.add(
                await stream_probe(http, "POST /chat/stream", chat_body("list my tasks", thread)),
                write=True,
            )
            await add_reads(http, report, thread)
            if mounted:
                filler.unlink()
            else:
                server.limit_file_size(None)
            await recover(http, report, [thread])
        report.integrity_failures = len(integrity_failures(data_dir))
    finally:
        await asyncio.to_thread(server.stop)
        if mounted:
            unmount(mountpoint)
    report.sqlite_said = sqlite_said(server.log_path)
    return report


def sqlite_said(log_path: Path) -> list[str]:
    """The distinct SQLite errors the server logged as storage being unavailable."""
    if not log_path.exists():
        return []
    said = re.findall(r"storage unavailable on \S+: \w+ \((.*?)\)", log_path.read_text())
    return sorted(set(said))


def scratch(prefix: str) -> Path:
    """A fresh working directory for one fault."""
    return Path(tempfile.mkdtemp(prefix=f"faults-{prefix}-"))
