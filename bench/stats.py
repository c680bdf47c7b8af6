"""Summaries of repeated measurements: median with p5–p95 and IQR, and table cells."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

NAN = float("nan")


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics; NaN if empty."""
    if not values:
        return NAN
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Spread:
    """n, median, p5, p95 and the quartiles of a sample."""

    n: int
    p50: float
    p5: float
    p95: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Summarise `values` (an empty sample gives NaNs)."""
        return cls(
            n=len(values),
            p50=statistics.median(values) if values else NAN,
            p5=quantile(values, 0.05),
            p95=quantile(values, 0.95),
            q1=quantile(values, 0.25),
            q3=quantile(values, 0.75),
        )


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is zero or either is NaN."""
    return a / b if b and not math.isnan(a) and not math.isnan(b) else NAN


def ms(seconds: float, digits: int = 1) -> str:
    """Seconds as a millisecond (or, from 10 s, second) figure."""
    if math.isnan(seconds):
        return "—"
    if abs(seconds) >= 10:
        return f"{seconds:,.1f} s"
    return f"{seconds * 1000:,.{digits}f} ms"


def ms_spread(spread: Spread, digits: int = 1) -> str:
    """'median (p5–p95)' in milliseconds."""
    if spread.n == 0:
        return "—"
    return f"{ms(spread.p50, digits)} ({ms(spread.p5, digits)} – {ms(spread.p95, digits)})"


def times(value: float) -> str:
    """A ratio cell."""
    return "—" if math.isnan(value) else f"{value:,.1f}×"


def verdict(ok: bool) -> str:
    """Met or missed."""
    return "met" if ok else "**missed**"


def size(value: int | None) -> str:
    """Bytes as KiB or MiB."""
    if value is None:
        return "— (in memory)"
    if value >= 1 << 20:
        return f"{value / (1 << 20):.2f} MiB"
    return f"{value / 1024:.1f} KiB"
