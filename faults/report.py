"""Turning fault results into table rows and `docs/RELIABILITY.md`."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from faults import kills, load, models, shared, storage
from faults.database_restart import RestartReport
from faults.kills import KillReport
from faults.load import LoadReport
from faults.models import BREAKER_COOLDOWN_S, BREAKER_THRESHOLD, TURN_TIMEOUT_S, ModelReport
from faults.server import STANDBYS
from faults.shared import SharedReport
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


def shared_row(report: SharedReport, reproduce: str, replicas_on: str = "") -> Row:
    """The row of the two-servers-on-one-data-dir fault (or of two replicas on `replicas_on`)."""
    where = f"on {replicas_on}" if replicas_on else "on one data dir"
    return Row(
        f"SIGKILL of one of two {'replicas' if replicas_on else 'servers'} {where}",
        f"two `python -m server.cli serve` processes {where}; {report.kills} SIGKILLs"
        f" of the one running the turn (create/update/complete/delete/approve, stock SDK and"
        f" /chat/stream) on {report.threads} threads after a random delay ({report.mid_turn}"
        " landed mid-turn); the client turns to the other server and rejoins or resends",
        "every turn finished by the other server (or the restarted one): 0 lost, 0 duplicated"
        " side effects, 0 threads not resumable, 0 integrity_check failures, event ids"
        " gap-free across the two processes",
        f"lost acknowledged turns **{report.lost_acknowledged}** of {report.acknowledged};"
        f" resent unacknowledged turns lost {report.lost_unacknowledged} of"
        f" {report.retried_unacknowledged}; duplicated side effects"
        f" **{report.duplicated_effects}**; requested changes missing"
        f" {report.missing_effects}; threads not resumable **{report.threads_not_resumable}**"
        f" of {report.threads}; integrity_check failures **{report.integrity_failures}** in"
        f" {report.integrity_checks} checks; streams with gaps or repeats"
        f" {report.event_id_gaps}; runs cut mid-turn finished by the other server"
        f" {report.finished_by_other}, by the restarted one {report.finished_by_victim};"
        f" kill to finished run {_seconds(report.takeover_s)}",
        report.zero,
        reproduce,
    )


def restart_row(report: RestartReport, reproduce: str) -> Row:
    """The row of the database-restart fault."""
    return Row(
        "PostgreSQL restarted under two replicas",
        f"two replicas on PostgreSQL; {report.kills} fast shutdowns of PostgreSQL after a random"
        f" delay into a turn ({report.mid_turn} landed mid-turn), back after 0.5–3 s; a client"
        " asks for its tasks during each outage, then rejoins or resends on the other replica",
        "a 503 with Retry-After during every outage; then every turn finished with nobody"
        " acting: 0 lost, 0 duplicated side effects, 0 threads not resumable, 0 amcheck"
        " failures, event ids gap-free",
        f"clean 503s **{report.clean_503}** of {report.kills} (other answers"
        f" {report.other_answers}); lost acknowledged turns **{report.lost_acknowledged}** of"
        f" {report.acknowledged}; resent unacknowledged turns lost {report.lost_unacknowledged}"
        f" of {report.retried_unacknowledged}; duplicated side effects"
        f" **{report.duplicated_effects}**; requested changes missing {report.missing_effects};"
        f" threads not resumable **{report.threads_not_resumable}** of {report.threads};"
        f" amcheck failures **{report.integrity_failures}** in {report.integrity_checks} checks;"
        f" streams with gaps or repeats {report.event_id_gaps}; database back to both replicas"
        f" serving {_seconds(report.recovery_s)}",
        report.zero and report.other_answers == 0,
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
        f" {report.follow_ups}; integrity_check failures **{report.integrity_failures}**"
        + (
            f"; SQLite said: {', '.join(repr(text) for text in report.sqlite_said)}"
            if report.sqlite_said
            else ""
        ),
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
    if report.name == "malformed tool calls":
        expected = (
            f"every turn answered by {report.expected_tier} itself (the model sees the error and"
            f" corrects its call) within the {TURN_TIMEOUT_S:g} s turn timeout; the breaker"
            " stays closed"
        )
    else:
        expected = (
            f"every turn answered (by {report.expected_tier}) within the {TURN_TIMEOUT_S:g} s"
            f" turn timeout; the Ollama breaker opens after {BREAKER_THRESHOLD} consecutive"
            " failures and closes after the cool-down and one good call"
        )
    return Row(
        f"model: {report.name}",
        report.injected,
        expected,
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
        f"0 errors; server memory levels off (RSS slope over the last minute below"
        f" {load.FLAT_MIB_PER_MIN:g} MiB/min)",
        f"errors **{report.errors}**; turns completed {report.turns}"
        f" ({report.resent} resent under their Idempotency-Key after the connection dropped"
        f" before any answer, {report.rejoined} rejoined with Last-Event-ID mid-stream)"
        f", {report.turns / report.seconds:.1f}/s; turn latency p50"
        f" {report.percentile(0.5):.2f} s, p95 {report.percentile(0.95):.2f} s; server RSS"
        f" start {start:.0f} MiB, peak {peak:.0f} MiB, end {end:.0f} MiB (at each minute:"
        f" {', '.join(f'{mib:.0f}' for mib in report.rss_by_minute())} MiB); slope over the"
        f" last {window:g} s {report.rss_slope(window):+.2f} MiB/min, over the last 60 s"
        f" {report.rss_slope(60):+.2f} MiB/min",
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


def settings_section() -> str:
    """How each fault was set up: the knobs behind the figures."""
    return f"""\
## How each fault is set up

- **SIGKILL** (`faults/kills.py`, `faults/killpoint.py`): offline engine paced at
  {kills.TOKEN_DELAY_MS} ms per token so a turn lasts about a second; 6 threads (3 driven by
  the stock `langgraph-sdk` `runs.stream`, 3 by `/chat/stream`), every request with an
  `Idempotency-Key`. Each round: SIGKILL (with probability 0.6) after a uniform
  0–{kills.MAX_KILL_DELAY_S:g} s delay after the POST, or (0.4) at a kill point armed in the
  server (`after_run_start`,
  `before_tool_commit`, `after_tool_commit`, `after_checkpoint` n, `after_event_log` n,
  `before_run_end`, and for approvals `after_resume_write`), waiting up to
  {kills.POINT_WAIT_S:g} s for it. The client then rejoins with the last event id it saw
  (`join_stream(last_event_id=…)` or `Last-Event-ID`), or resends under the same key when it
  never learnt a run id, and asks for the run's status. A replacement process is started
  ahead of time ({STANDBYS} kept ready): it does its imports, then waits for a line on stdin
  before it opens the data dir, so a restart costs recovery, not imports. Integrity is checked
  read-only after every kill and after every recovery.
- **Two servers on one data dir** (`faults/shared.py`): offline engine paced at
  {shared.TOKEN_DELAY_MS} ms per token ({shared.FIRST_TOKEN_DELAY_MS} ms to a reply's first),
  `TASKAGENT_RUN_LEASE_S={shared.LEASE_S}`, `TASKAGENT_RUN_POLL_S={shared.POLL_S}`; 4 threads
  (2 SDK, 2 `/chat/stream`). Each round sends the turn to one server, SIGKILLs it after a
  uniform 0–{shared.MAX_KILL_DELAY_S:g} s delay, restarts it, and settles the turn on the
  other one (rejoin with the last event id seen, or resend under the same key).
- **Locks** (`faults/storage.py`): `TASKAGENT_BUSY_TIMEOUT_MS={storage.BUSY_TIMEOUT_MS}`; a
  second Python process opens the database and holds `BEGIN EXCLUSIVE` (in WAL mode that
  blocks writers, not readers) while a streamed turn is in flight and the probes run.
- **Disk full**: the data dir on its own {storage.TMPFS_SIZE[:-1]} MiB tmpfs, filled to the
  last 512-byte block. Where mounting is not permitted (unprivileged CI) the server runs with
  `RLIMIT_FSIZE` at {storage.FSIZE_LIMIT // 1024} KiB and SIGXFSZ ignored, so each write past
  it fails with EFBIG, which SQLite reports as "disk I/O error"; the row says which was used.
- **Models** (`faults/models.py`): Ollama tier then OpenAI tier then the offline engine,
  `TASKAGENT_MODEL_TIMEOUT_S={models.MODEL_TIMEOUT_S:g}`,
  `TASKAGENT_MODEL_MAX_ATTEMPTS={models.MAX_ATTEMPTS}`,
  `TASKAGENT_BREAKER_THRESHOLD={models.BREAKER_THRESHOLD}`,
  `TASKAGENT_BREAKER_COOLDOWN_S={models.BREAKER_COOLDOWN_S:g}`,
  `TASKAGENT_TURN_TIMEOUT_S={models.TURN_TIMEOUT_S:g}`, `TASKAGENT_RETRY_MAX_S=2` (the
  backoff cap; a `Retry-After` up to `TASKAGENT_RETRY_AFTER_MAX_S`, 30 s, is waited in
  full). Breaker states are read from `GET /health`.
- **Load** (`faults/load.py`): one API key and thread per session, offline engine paced at
  {load.TOKEN_DELAY_MS} ms per token, think time {load.THINK_S[0]:g}–{load.THINK_S[1]:g} s, server
  RSS (psutil) every {load.RSS_EVERY_S:g} s. Client and server share the machine's cores.
"""


FOUND = """\
## What the suite found (and is now fixed)

- **A turn acknowledged and then dropped.** A run killed after it was recorded as running but
  before its input reached a checkpoint was resumed "from its last checkpoint" — which was the
  end of the thread's previous turn — and marked successful without ever seeing the user's
  message. Recovery now checks whether any checkpoint carries the run's id and, if none does,
  starts the run over from its request (`RunManager._reached_graph`;
  `tests/faults/test_kill_points.py`).
- **An approval refused after a restart.** A run answering an approval, killed after the
  approved step had run and saved its writes but before that step's checkpoint, was started
  over from its request on restart and refused: "not waiting for an answer; nothing to
  resume". The approval is now treated as in the thread once the interrupt no longer waits,
  and the run continues (`tests/faults/test_kill_points.py`).
- **Locked or full storage answered 500.** `sqlite3.OperationalError` "database is locked",
  "database or disk is full" and "disk I/O error" reached the generic handler. They are now a
  503 with `Retry-After` and a sentence (`server/api/storage_errors.py`); a run that hits one ends
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
        "`make faults` runs them all (`.venv/bin/python -m faults`); `make test` runs the short"
        " set (`tests/faults/test_faults_short.py`: 5 kills, 3 kills with two servers on one"
        " data dir, both locks, the disk, every model"
        " fault once, 20 sessions for 10 s) and asserts the zeros.",
        "",
        *details,
        settings_section(),
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
