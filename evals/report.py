"""The eval's report: a Markdown table by category, then the totals that matter most."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any

from evals.cases import CATEGORIES
from evals.runner import CaseResult


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(results: list[CaseResult]) -> dict[str, Any]:
    """Return the figures the table shows, as plain data (also written by --json)."""
    turns = [t for r in results for t in r.turns]
    latencies = [t.latency_s for t in turns]
    tokens = [t.prompt_tokens for t in turns if t.prompt_tokens is not None]
    by_category = {
        category: {
            "passed": sum(r.passed for r in results if r.category == category),
            "cases": sum(r.category == category for r in results),
        }
        for category in CATEGORIES
        if any(r.category == category for r in results)
    }
    return {
        "cases": len(results),
        "passed": sum(r.passed for r in results),
        "pass_rate": sum(r.passed for r in results) / len(results) if results else 0.0,
        "by_category": by_category,
        "silent_wrong_writes": sum(r.silent_wrong_writes for r in results),
        "false_claims": sum(r.false_claims for r in results),
        "tool_call_errors": sum(r.tool_errors for r in results),
        "fallbacks": sum(r.fallbacks for r in results),
        "turns": len(turns),
        "latency_median_s": statistics.median(latencies) if latencies else 0.0,
        "latency_p95_s": _percentile(latencies, 0.95),
        "prompt_tokens_mean": statistics.mean(tokens) if tokens else 0.0,
        "prompt_tokens_max": max(tokens) if tokens else 0,
        "aborted": sum(r.error is not None for r in results),
    }


def table(results: list[CaseResult], title: str) -> str:
    """Return the Markdown report: pass rate by category, totals, and the failed cases."""
    s = summary(results)
    lines = [
        f"### {title}",
        "",
        "| category | passed | cases | pass rate |",
        "|---|---:|---:|---:|",
    ]
    for category, row in s["by_category"].items():
        rate = row["passed"] / row["cases"]
        lines.append(f"| {category} | {row['passed']} | {row['cases']} | {rate:.0%} |")
    lines.append(
        f"| **overall** | **{s['passed']}** | **{s['cases']}** | **{s['pass_rate']:.0%}** |"
    )
    lines += [
        "",
        "| measure | value |",
        "|---|---:|",
        f"| silent wrong writes | {s['silent_wrong_writes']} |",
        f"| false claims (answers claiming a change not made; heuristic) | {s['false_claims']} |",
        f"| tool-call errors (denied or failed calls, audit) | {s['tool_call_errors']} |",
        f"| fallbacks (answers not from the configured tier) | {s['fallbacks']} |",
        f"| turn latency median / p95 | {s['latency_median_s']:.2f} s"
        f" / {s['latency_p95_s']:.2f} s |",
        f"| prompt tokens per turn, mean / max | {s['prompt_tokens_mean']:.0f}"
        f" / {s['prompt_tokens_max']} |",
        f"| turns / cases aborted | {s['turns']} / {s['aborted']} |",
    ]
    failed = [r for r in results if not r.passed]
    if failed:
        lines += ["", "Failed cases:", ""]
        for r in failed:
            extra = (
                f" [{r.silent_wrong_writes} silent wrong write(s)]" if r.silent_wrong_writes else ""
            )
            lines.append(f"- `{r.case_id}` ({r.category}){extra}: {'; '.join(r.problems)[:300]}")
    claimed = [(r, t) for r in results for t in r.turns if t.false_claims]
    if claimed:
        lines += ["", "False claims:", ""]
        for r, t in claimed:
            lines.append(
                f"- `{r.case_id}` {t.said!r} → claims {t.false_claims}: {t.answer[:160]!r}"
            )
    return "\n".join(lines)


def as_json(results: list[CaseResult]) -> dict[str, Any]:
    """Return the summary and every case's record, for --json."""
    return {"summary": summary(results), "cases": [asdict(r) for r in results]}
