"""The machine under the benchmark: CPUs, versions, load before and after each workload."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata

import psutil

PACKAGES = (
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langchain-core",
    "langgraph-api",
    "langgraph-runtime-inmem",
    "langgraph-cli",
    "langgraph-sdk",
    "fastapi",
    "uvicorn",
    "sse-starlette",
    "aiosqlite",
)


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def versions() -> str:
    """Python and the installed versions of the packages that matter."""
    found = [f"Python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process (and its reaped children) used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process and of its live children (``--workers`` processes)."""
    process = psutil.Process(pid)
    total = cpu_seconds(pid)
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass
class Phase:
    """One workload's wall time and the load average just before and just after it."""

    name: str
    load_before: float
    load_after: float = float("nan")
    wall_s: float = 0.0


@dataclass
class Journal:
    """Every phase of the run, in order."""

    phases: list[Phase] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Record `name`'s load before and after and its wall time; print progress."""
        entry = Phase(name, load())
        print(f"[bench] {name} (load {entry.load_before:.2f}) ...", flush=True)
        started = time.perf_counter()
        try:
            yield entry
        finally:
            entry.wall_s = time.perf_counter() - started
            entry.load_after = load()
            self.phases.append(entry)
            print(f"[bench] {name} done in {entry.wall_s:.1f} s", flush=True)
