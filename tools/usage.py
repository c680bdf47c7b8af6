"""Model usage and budgets: tokens and cost per call, totals per thread and per user per day."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tools.database import Connection
from tools.migrations import Migration
from tools.postgres import pg_schema
from tools.sqlite import fetch_one, now_iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    day TEXT NOT NULL,
    user TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    estimated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_user_day ON usage (user, day);
CREATE INDEX IF NOT EXISTS usage_thread ON usage (thread_id);
CREATE INDEX IF NOT EXISTS usage_run ON usage (run_id);
"""

MIGRATIONS: list[Migration] = [SCHEMA]
PG_MIGRATIONS: list[Migration] = [pg_schema(SCHEMA)]
"""The usage store's schema versions, oldest first (see `tools.migrations.migrate`)."""

WARN_AT = 0.8
BUDGET_KINDS = ("thread_tokens", "user_day_tokens", "user_day_usd")


@dataclass(frozen=True)
class Limits:
    """Hard limits; 0 means none."""

    tokens_per_thread: int
    tokens_per_user_day: int
    usd_per_user_day: float


@dataclass(frozen=True)
class Totals:
    """What has been spent so far."""

    thread_tokens: int
    user_day_tokens: int
    user_day_usd: float

    def _checks(self, limits: Limits) -> list[tuple[float, float, str]]:
        return [
            (limits.tokens_per_thread, self.thread_tokens, "this conversation's token budget"),
            (limits.tokens_per_user_day, self.user_day_tokens, "your daily token budget"),
            (limits.usd_per_user_day, self.user_day_usd, "your daily cost budget"),
        ]

    def exceeded(self, limits: Limits) -> str | None:
        """Return which limit is used up, in words, or None."""
        for limit, spent, name in self._checks(limits):
            if limit and spent >= limit:
                return f"{name} ({_amount(limit)}) is used up ({_amount(spent)} spent)"
        return None

    def exceeded_kind(self, limits: Limits) -> str | None:
        """Return which limit is used up as a metric label, or None."""
        for kind, (limit, spent, _) in zip(BUDGET_KINDS, self._checks(limits), strict=True):
            if limit and spent >= limit:
                return kind
        return None

    def nearly(self, limits: Limits) -> str | None:
        """Return which limit is past the warning threshold, in words, or None."""
        for limit, spent, name in self._checks(limits):
            if limit and spent >= WARN_AT * limit:
                return f"{round(100 * spent / limit)}% of {name} is used"
        return None

    def as_dict(self, limits: Limits) -> dict[str, Any]:
        """Return totals and limits for state and API responses."""
        return {
            "thread_tokens": self.thread_tokens,
            "user_day_tokens": self.user_day_tokens,
            "user_day_cost_usd": round(self.user_day_usd, 6),
            "limits": {
                "tokens_per_thread": limits.tokens_per_thread,
                "tokens_per_user_day": limits.tokens_per_user_day,
                "usd_per_user_day": limits.usd_per_user_day,
            },
        }


def _amount(value: float) -> str:
    return (
        f"${value:.2f}" if isinstance(value, float) and value < 1000 else f"{int(value):,} tokens"
    )


# No model reads or writes this many tokens in one call: a larger report is a provider fault.
MAX_REPORTED_TOKENS = 10_000_000


def reported_tokens(value: object) -> int | None:
    """Return a provider-reported token count if it is believable, else None.

    Believable is a whole number from 0 to `MAX_REPORTED_TOKENS`: a negative count would
    lower the user's spent budget, a fraction or a string is not a count at all.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_REPORTED_TOKENS else None


def estimate_tokens(text: str) -> int:
    """Estimate tokens for a model that reports none: about four characters per token."""
    return max(1, len(text) // 4)


def price(
    prices: dict[str, dict[str, float]], tier: str, input_tokens: int, output_tokens: int
) -> float:
    """Return the cost in USD of one call by the price table (USD per million tokens)."""
    entry = prices.get(tier) or prices.get(tier.split(":", 1)[-1]) or {}
    return (input_tokens * entry.get("input", 0.0) + output_tokens * entry.get("output", 0.0)) / 1e6


def today_utc() -> str:
    """Return today's date (UTC) as the budget day."""
    return datetime.now(UTC).date().isoformat()


async def record_usage(
    conn: Connection,
    *,
    user: str,
    thread_id: str,
    run_id: str,
    tier: str,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    estimated: bool,
) -> None:
    """Append one model call's usage (counts and cost below zero are stored as zero)."""
    input_tokens, output_tokens = max(0, input_tokens), max(0, output_tokens)
    cost_usd = cost_usd if math.isfinite(cost_usd) and cost_usd > 0 else 0.0
    await conn.execute(
        "INSERT INTO usage (ts, day, user, thread_id, run_id, tier, input_tokens, output_tokens,"
        " tokens, cost_usd, estimated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now_iso(),
            today_utc(),
            user,
            thread_id,
            run_id,
            tier,
            input_tokens,
            output_tokens,
            input_tokens + output_tokens,
            cost_usd,
            int(estimated),
        ),
    )


async def totals(conn: Connection, user: str, thread_id: str) -> Totals:
    """Return the thread's tokens and the user's tokens and cost today."""
    thread_row = await fetch_one(
        conn, "SELECT COALESCE(SUM(tokens), 0) FROM usage WHERE thread_id = ?", (thread_id,)
    )
    user_row = await fetch_one(
        conn,
        "SELECT COALESCE(SUM(tokens), 0), COALESCE(SUM(cost_usd), 0) FROM usage"
        " WHERE user = ? AND day = ?",
        (user, today_utc()),
    )
    assert thread_row is not None and user_row is not None
    return Totals(int(thread_row[0]), int(user_row[0]), float(user_row[1]))


async def run_tokens(conn: Connection, run_id: str) -> int:
    """Return the tokens a run used."""
    row = await fetch_one(
        conn, "SELECT COALESCE(SUM(tokens), 0) FROM usage WHERE run_id = ?", (run_id,)
    )
    return int(row[0]) if row else 0
