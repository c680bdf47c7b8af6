"""The wall-clock view: where a turn waits while sessions run (event loop, SQLite queues, locks).

The server runs with ``TASKAGENT_WALLCLOCK_PROBES=true`` (see
``server/observability/wallclock.py``); its ``/metrics`` histograms are read before and after
a W3 level, and the difference is summarised per probe: how many waits, their mean and p95
(from the histogram's buckets) and the total seconds spent waiting per completed turn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.concurrency import Level, run_level
from bench.servers import Server

PROBES = (
    ("taskagent_event_loop_lag_seconds", "event-loop lag (sampled every 10 ms)"),
    ("taskagent_sqlite_queue_wait_seconds", "SQLite: waiting in the connection's queue"),
    ("taskagent_sqlite_execute_seconds", "SQLite: running on the connection's thread"),
    ("taskagent_sqlite_wakeup_seconds", "SQLite: thread done → coroutine resumed"),
    ("taskagent_sqlite_queue_depth", "SQLite: statements already queued (count, not s)"),
    ("taskagent_lock_wait_seconds", "lock wait"),
)

Buckets = dict[tuple[str, str], dict[float, float]]


@dataclass
class Row:
    """One probe (and label) over the window."""

    probe: str
    label: str
    count: float
    total: float
    p50: float
    p95: float

    @property
    def mean(self) -> float:
        """Mean of the observed values."""
        return self.total / self.count if self.count else math.nan


@dataclass
class WallClock:
    """The probes' differences over one W3 level, and the level itself."""

    sessions: int
    level: Level | None = None
    rows: list[Row] = field(default_factory=list)
    error: str = ""


async def scrape(url: str) -> tuple[Buckets, dict[tuple[str, str], float]]:
    """Cumulative bucket counts and sums of the probes' histograms, by (probe, label)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        text = (await http.get(f"{url}/metrics")).text
    buckets: Buckets = {}
    sums: dict[tuple[str, str], float] = {}
    wanted = {name for name, _ in PROBES}
    for family in text_string_to_metric_families(text):
        if family.name not in wanted:
            continue
        for sample in family.samples:
            label = sample.labels.get("db") or sample.labels.get("lock") or ""
            key = (family.name, label)
            if sample.name.endswith("_bucket"):
                buckets.setdefault(key, {})[float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                sums[key] = sample.value
    return buckets, sums


def quantile(cumulative: dict[float, float], q: float) -> float:
    """The q-quantile by linear interpolation inside the histogram's buckets."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if not total:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower


async def wall_clock(server: Server, sessions: int, window_s: float) -> WallClock:
    """Run one W3 level against a probed server and summarise where turns waited."""
    result = WallClock(sessions)
    try:
        before_buckets, before_sums = await scrape(server.url)
        result.level = await run_level(server, sessions, window_s)
        after_buckets, after_sums = await scrape(server.url)
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    for name, _ in PROBES:
        for key in sorted(k for k in after_buckets if k[0] == name):
            start = before_buckets.get(key, {})
            delta = {b: c - start.get(b, 0.0) for b, c in after_buckets[key].items()}
            count = delta.get(math.inf, 0.0)
            if not count:
                continue
            total = after_sums.get(key, 0.0) - before_sums.get(key, 0.0)
            result.rows.append(
                Row(name, key[1], count, total, quantile(delta, 0.5), quantile(delta, 0.95))
            )
    return result
