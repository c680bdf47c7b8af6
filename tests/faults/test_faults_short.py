"""The short set of the fault-injection suite (`make faults` runs the full one).

The same code as `python -m faults --quick`, with small counts, asserting the zeros: every
fault is injected into the real server (real SQLite, fake model peers on loopback).
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from faults.database_restart import run_restarts
from faults.kills import KillReport, run_kills
from faults.load import run_load
from faults.models import TURN_TIMEOUT_S, run_model_faults
from faults.shared import run_shared
from faults.storage import disk_full_fault, lock_fault

pytestmark = pytest.mark.integration


def assert_nothing_lost(report: KillReport) -> None:
    """No turn lost, no effect twice or missing, every thread resumable, no gap, no damage."""
    for count in (
        report.lost_acknowledged,
        report.lost_unacknowledged,
        report.duplicated_effects,
        report.missing_effects,
        report.threads_not_resumable,
        report.integrity_failures,
        report.event_id_gaps,
    ):
        assert count == 0, report.problems


async def test_five_sigkills_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    report = await run_kills(5, tmp_path, seed=6)
    assert report.kills == 5 and report.turns == 5
    assert report.lost_acknowledged == 0, report.problems
    assert report.lost_unacknowledged == 0, report.problems
    assert report.duplicated_effects == 0, report.problems
    assert report.missing_effects == 0, report.problems
    assert report.threads_not_resumable == 0, report.problems
    assert report.integrity_failures == 0, report.problems
    assert report.event_id_gaps == 0, report.problems


async def test_three_sigkills_of_one_of_two_replicas_on_postgresql_lose_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    report = await run_shared(3, tmp_path, seed=6, database_url=pg_url)
    assert report.kills == 3 and report.turns == 3
    assert_nothing_lost(report)
    assert report.integrity_checks > 0


@pytest.mark.usefixtures("postgres")  # skips like the others where PostgreSQL cannot run
async def test_three_postgresql_restarts_mid_turn_are_503s_then_lose_nothing(
    tmp_path: Path,
) -> None:
    database_dir = Path(tempfile.mkdtemp(prefix="taskagent-pg-"))
    try:
        report = await run_restarts(3, tmp_path, database_dir, seed=6)
    finally:
        shutil.rmtree(database_dir, ignore_errors=True)
    assert report.kills == 3 and report.turns == 3
    assert (report.clean_503, report.other_answers) == (3, 0), report.problems
    assert_nothing_lost(report)


async def test_three_sigkills_of_one_of_two_servers_on_one_data_dir_lose_nothing(
    tmp_path: Path,
) -> None:
    report = await run_shared(3, tmp_path, seed=6)
    assert report.kills == 3 and report.turns == 3
    assert report.mid_turn >= 1, "at least one kill must land inside a turn"
    assert report.lost_acknowledged == 0, report.problems
    assert report.lost_unacknowledged == 0, report.problems
    assert report.duplicated_effects == 0, report.problems
    assert report.missing_effects == 0, report.problems
    assert report.threads_not_resumable == 0, report.problems
    assert report.integrity_failures == 0, report.problems
    assert report.event_id_gaps == 0, report.problems
    # Every run cut mid-turn was finished by a live process: the other one, or the restarted one.
    finished = report.finished_by_other + report.finished_by_victim
    assert finished == len(report.takeover_s) >= 1, report


@pytest.mark.parametrize("database", ["tasks", "runs"])
async def test_a_database_locked_by_another_process_is_a_503_then_recovers(
    tmp_path: Path, database: str
) -> None:
    report = await lock_fault(database, tmp_path, writes=2)
    assert report.writes >= 3 and report.writes_clean == report.writes, report.problems
    assert report.server_errors == 0 and report.hangs == 0, report.problems
    assert report.reads_served == report.reads, report.problems
    assert report.inflight_ended in ("StorageUnavailable", "EventLogError", "done")
    assert report.recovered_after_s is not None and report.recovered_after_s < 5
    assert report.follow_ups_ok == report.follow_ups == 2, report.problems
    assert report.integrity_failures == 0


async def test_a_full_disk_is_a_503_then_recovers(tmp_path: Path) -> None:
    # Without permission to mount a small tmpfs (unprivileged CI) this uses RLIMIT_FSIZE.
    report = await disk_full_fault(tmp_path)
    assert report.writes >= 3 and report.writes_clean == report.writes, report.problems
    assert report.server_errors == 0 and report.hangs == 0, report.problems
    assert report.reads_served == report.reads, report.problems
    assert report.recovered_after_s is not None, report.problems
    assert report.follow_ups_ok == report.follow_ups, report.problems
    assert report.integrity_failures == 0


async def test_every_model_fault_is_answered_through_the_fallback_chain(tmp_path: Path) -> None:
    reports = await run_model_faults(1, tmp_path)
    assert [r.name for r in reports] == [
        "hang",
        "slow stream",
        "mid-stream cut",
        "500s",
        "429 storm",
        "malformed tool calls",
    ]
    for report in reports:
        assert report.answered == report.attempted == 1, (report.name, report.problems)
        assert report.max_latency_s < TURN_TIMEOUT_S, report.name
        assert report.by_tier == {report.expected_tier: 1}, (report.name, report.by_tier)
        assert report.healed_tier == "ollama:tiny", report.name
        assert report.breaker_after_cooldown == "closed", report.name
        assert report.zero, report
    assert {r.breaker_after_faults for r in reports[:5]} <= {"open", "half_open"}


async def test_twenty_streaming_sessions_see_no_errors(tmp_path: Path) -> None:
    report = await run_load(20, 8, tmp_path)
    assert report.errors == 0, report.problems
    assert report.turns >= 40
    assert report.rss and report.percentile(0.95) < 30
