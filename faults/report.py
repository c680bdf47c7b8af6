"""Turning fault results into table rows and `docs/RELIABILITY.md`."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from faults.kills import KillReport
from faults.load import LoadReport
from faults.models import BREAKER_COOLDOWN_S, BREAKER_THRESHOLD, TURN_TIMEOUT_S, ModelReport
from faults.storage import BUSY_TIMEOUT_MS, StorageReport


@dataclass
class Row:
    """One fault: what was injected, what should happen, what did, and whether that is a pass."""

    fault: str
    injected: str
    expected: str
    observed: str
    passed: bool
    reproduce: str


def _seconds(values: list[float]) -> str:
    if not values:
        return "—"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def kill_row(report: KillReport, reproduce: str) -> Row:
    """The row of the SIGKILL fault."""
    points = ", ".join(f"{name} {count}" for name, count in sorted(report.point_kills.items()))
    return Row(
        "SIGKILL of the server",
        f"{report.kills} SIGKILLs of `python -m server.cli serve` during {report.turns} turns"
        f" (create/update/complete/delete/approve, stock SDK and /chat/stream) on"
        f" {report.threads} threads: {report.random_kills} after a random delay"
        f" ({report.mid_turn} of all kills landed mid-turn), the rest at instrumented points"
        f" ({points}); restart on the same port and data dir, rejoin or resend",
        "0 lost acknowledged turns, 0 duplicated side effects, 0 threads not resumable,"
        " 0 integrity_check failures, event ids gap-free",
        f"lost acknowledged turns **{report.lost_acknowledged}** of {report.acknowledged};"
        f" resent unacknowledged turns lost {report.lost_unacknowledged} of"
        f" {report.retried_unacknowledged}; duplicated side effects"
        f" **{report.duplicated_effects}**; requested changes missing"
        f" {report.missing_effects}; threads not resumable **{report.threads_not_resumable}**"
        f" of {report.threads}; integrity_check failures **{report.integrity_failures}** in"
        f" {report.integrity_checks} checks of every database; streams with gaps or repeats"
        f" {report.event_id_gaps}; restart {_seconds(report.restart_s)}",
        report.zero,
        reproduce,
    )


def storage_row(report: StorageReport, expected: str, reproduce: str) -> Row:
    """The row of a lock or disk-full fault."""
    inflight = (
        f" in-flight stream ended with `{report.inflight_ended}`;" if report.inflight_ended else ""
    )
    before = (
        f" {report.turns_before_failure} turns still fit before the first refusal;"
        if report.turns_before_failure
        else ""
    )
    recovered = (
        f"{report.recovered_after_s:.2f} s" if report.recovered_after_s is not None else "never"
    )
    return Row(
        report.name,
        report.mechanism,
        expected,
        f"writes refused cleanly (503 + Retry-After, or a StorageUnavailable event)"
        f" **{report.writes_clean} of {report.writes}**; 500s **{report.server_errors}**;"
        f" hangs {report.hangs}; slowest answer {report.max_seconds:.2f} s; reads served"
        f" {report.reads_served} of {report.reads};{inflight}{before} first write after release"
        f" succeeded after {recovered}; follow-up turns {report.follow_ups_ok} of"
        f" {report.follow_ups}; integrity_check failures **{report.integrity_failures}**",
        report.zero,
        reproduce,
    )


def model_row(report: ModelReport, reproduce: str) -> Row:
    """The row of one model fault."""
    tiers = ", ".join(f"{tier} {count}" for tier, count in sorted(report.by_tier.items()))
    breaker = (
        f"Ollama breaker after the faults `{report.breaker_after_faults}`, after the"
        f" {BREAKER_COOLDOWN_S:g} s cool-down and one good call `{report.breaker_after_cooldown}`"
    )
    return Row(
        f"model: {report.name}",
        report.injected,
        f"every turn answered (by {report.expected_tier}) within the {TURN_TIMEOUT_S:g} s turn"
        f" timeout; breaker opens after {BREAKER_THRESHOLD} failures"
        + ("" if report.name != "malformed tool calls" else " (not a failure: stays closed)")
        + " and closes after the cool-down",
        f"answered **{report.answered} of {report.attempted}** ({tiers}); slowest"
        f" {report.max_latency_s:.2f} s; {breaker}; healed turn answered by {report.healed_tier}"
        + (
            f"; shortest wait before a retry {report.min_retry_gap_s:.2f} s"
            if report.min_retry_gap_s is not None
            else ""
        ),
        report.zero,
        reproduce,
    )


def load_row(report: LoadReport, reproduce: str) -> Row:
    """The row of the load fault."""
    start, peak, end = report.rss_mib()
    window = min(240.0, report.seconds)
    return Row(
        "load",
        f"{report.sessions} concurrent /chat/stream sessions (one user and thread each) for"
        f" {report.seconds:g} s, turns back to back with 0.5–1.5 s think time, offline engine"
        " paced at 20 ms per token",
        "0 errors; memory flat",
        f"errors **{report.errors}**; turns completed {report.turns}"
        f" ({report.turns / report.seconds:.1f}/s); turn latency p50"
        f" {report.percentile(0.5):.2f} s, p95 {report.percentile(0.95):.2f} s; server RSS"
        f" start {start:.0f} MiB, peak {peak:.0f} MiB, end {end:.0f} MiB; slope over the last"
        f" {window:g} s {report.rss_slope(window):+.2f} MiB/min",
        report.zero,
        reproduce,
    )


def machine() -> str:
    """A line describing the machine and its load when the run ended."""
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, Python"
        f" {platform.python_version()}; load average {load[0]:.2f} / {load[1]:.2f} /"
        f" {load[2]:.2f} (1/5/15 min) at the end of the run"
    )


FOUND = """\
## What the suite found (and is now fixed)

- **A turn acknowledged and then dropped.** A run killed after it was recorded as running but
  before its input reached a checkpoint was resumed "from its last checkpoint" — which was the
  end of the thread's previous turn — and marked successful without ever seeing the user's
  message. Recovery now checks whether any checkpoint carries the run's id and, if none does,
  starts the run over from its request (`RunManager._reached_graph`;
  `tests/faults/test_kill_points.py`).
- **Locked or full storage answered 500.** `sqlite3.OperationalError` "database is locked",
  "database or disk is full" and "disk I/O error" reached the generic handler. They are now a
  503 with `Retry-After` and a sentence (`server/storage_errors.py`); a run that hits one ends
  with a `StorageUnavailable` error event, `/chat` answers 503, and the run's final status is
  written once the storage is back instead of being left `running`.
"""


def render(rows: list[Row], *, command: str, seconds: float, details: list[str]) -> str:
    """The whole `docs/RELIABILITY.md`."""
    lines = [
        "# Reliability: the fault-injection suite",
        "",
        f"`{command}` injects each fault below into the real server (`python -m server.cli"
        " serve`, real SQLite files, fake model peers on 127.0.0.1 speaking the Ollama and"
        " OpenAI protocols) and writes this file from what it counted. Nothing of ours is"
        " mocked.",
        "",
        f"Figures from one full run ({seconds / 60:.1f} min) on {machine()}, finished"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. The machine is shared with other jobs, so"
        " the timings are loaded-machine figures.",
        "",
        "| # | fault | injected | expected | observed | result |",
        "|---|---|---|---|---|---|",
    ]
    for index, row in enumerate(rows, 1):
        verdict = "pass" if row.passed else "**FAIL**"
        lines.append(
            f"| {index} | {row.fault} | {row.injected} | {row.expected} | {row.observed} |"
            f" {verdict} |"
        )
    lines += ["", "## How to reproduce", ""]
    lines += [f"{index}. {row.fault}: `{row.reproduce}`" for index, row in enumerate(rows, 1)]
    lines += [
        "",
        "`make faults` runs them all (`uv run python -m faults`); `make test` runs the short"
        " set (`tests/faults/test_faults_short.py`: 5 kills, both locks, the disk, every model"
        " fault once, 20 sessions for 10 s) and asserts the zeros.",
        "",
        *details,
        FOUND,
    ]
    return "\n".join(lines)


def storage_expectation(kind: str) -> str:
    """The expected column of a storage fault."""
    if kind == "disk":
        return (
            "writes: 503 + Retry-After with a sentence, no 500, no hang; reads still served;"
            " databases intact; recovers by itself once the filler is removed"
        )
    return (
        f"with busy_timeout {BUSY_TIMEOUT_MS} ms: writes get 503 + Retry-After with a"
        " sentence, no 500, no hang; reads served (WAL); a turn in flight ends with an error"
        " event; recovers by itself after release; threads resumable; databases intact"
    )
