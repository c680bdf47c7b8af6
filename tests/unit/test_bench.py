"""The benchmark's arithmetic: pacing ideal, quantiles, profile attribution, report markers."""

from pathlib import Path

from bench import report
from bench.concurrency import Profile, summarize
from bench.servers import HOSTED, ROOT, ZERO
from bench.stats import Spread, quantile


def test_hosted_ideal_is_first_chunk_delay_then_token_delay_per_call() -> None:
    # A tool call (one chunk), then a 13-chunk answer: 0.3 s + (0.3 s + 12 * 0.02 s).
    assert abs(HOSTED.ideal_s([1, 13]) - 0.84) < 1e-9
    assert ZERO.ideal_s([1, 13]) == 0


def test_quantiles_interpolate_and_spread_reports_n() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.5) == 50.5
    assert abs(quantile(values, 0.95) - 95.05) < 1e-9
    spread = Spread.of(values)
    assert (spread.n, spread.p50, spread.q1, spread.q3) == (100, 50.5, 25.75, 75.25)


def test_profile_samples_go_to_the_innermost_known_area() -> None:
    ours = f"append ({ROOT}/server/runs/engine.py:250)"
    sqlite = "_execute (/venv/site-packages/aiosqlite/core.py:158)"
    loop = "run (/usr/lib/python3.11/asyncio/runners.py:118)"
    raw = "\n".join([f"{loop};{ours};{sqlite} 3", f"{loop};{ours} 1", f"{loop} 1"])
    result = Profile(sessions=1)
    summarize(raw, result)
    assert result.samples == 5
    assert dict(result.areas) == {
        "aiosqlite / sqlite3": 0.6,
        "server/ (runs, event log, SSE, API)": 0.2,
        "asyncio event loop": 0.2,
    }


def test_report_replaces_only_the_generated_part(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"intro\n{report.BEGIN}\nold figures\n{report.END}\nnotes\n")
    report.write(path, report.Results(quick=True, header=["new figures"]))
    text = path.read_text()
    assert text.startswith("intro\n") and text.endswith("notes\n")
    assert "new figures" in text and "old figures" not in text


def test_the_previous_runs_figures_become_the_before_column(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        f"intro\n{report.BEGIN}\nMeasured 2026-11-22 07:41 UTC by `make bench` in 11.1 min.\n\n"
        "## Targets\n\n| workload | target | before | now | verdict |\n|---|---|---|---|---|\n"
        "| W2 turn 300 / turn 10 | ≤ 1.2 | 1.35 | 1.28 | **missed** |\n\n## Results\n"
        f"{report.END}\nnotes\n"
    )
    new = report.Results(quick=False, header=["new figures"])
    new.w2_turns = 300
    report.write(path, new)
    assert new.before == {"W2 turn 300 / turn 10": "1.28"}
    report._target(new, "W2 turn 300 / turn 10", "≤ 1.2", "1.12", True)
    assert new.targets[-1] == "| W2 turn 300 / turn 10 | ≤ 1.2 | 1.28 | 1.12 | met |"
    text = path.read_text()
    assert "previous run's figure (2026-11-22 07:41 UTC by `make bench` in 11.1 min)" in text
    assert text.startswith("intro\n") and text.endswith("notes\n")


def test_an_old_four_column_targets_table_is_read_too() -> None:
    text = "## Targets\n\n| workload | target | measured | verdict |\n|---|---|---|---|\n"
    text += "| W3 p95 added latency, 200 sessions | < 25 ms | 2,131.6 ms | **missed** |\n"
    assert report.previous(text)[0] == {"W3 p95 added latency, 200 sessions": "2,131.6 ms"}
