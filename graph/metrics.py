"""Prometheus metrics of the agent, recorded where things happen and exported at `/metrics`.

Plain module-level instruments on prometheus-client's default registry, so the nodes record
the same way under the server, the CLI, tests and `langgraph dev` (which simply never serves
them). Labels are bounded sets (tiers, tools, outcomes, statuses, route templates), never user
ids or thread ids.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# `*_created` series double what a scrape carries and no dashboard or alert here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

RUNS = Counter("taskagent_runs", "Runs that finished, by final status.", ["status"])
RUN_DURATION = Histogram(
    "taskagent_run_duration_seconds",
    "Run time from acceptance (including time queued behind the thread's earlier runs) to its end.",
    ["kind"],
    buckets=RUN_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "taskagent_time_to_first_token_seconds",
    "Time from a run's acceptance to the first answer token it streamed.",
    ["kind"],
    buckets=TOKEN_BUCKETS,
)
RUNS_QUEUED = Gauge(
    "taskagent_runs_queued", "Runs accepted and waiting for their thread's earlier runs."
)
RUNS_RUNNING = Gauge("taskagent_runs_running", "Runs executing now.")

MODEL_CALLS = Counter(
    "taskagent_model_calls",
    "Model call attempts by tier and outcome (ok, error, timeout, cancelled, refused: the "
    "tier's circuit breaker was open; too_large: a reply over the output limit, discarded).",
    ["tier", "outcome"],
)
FALLBACKS = Counter(
    "taskagent_fallbacks",
    "Times a failed tier handed the turn to the next one (to_tier=none: emergency answer).",
    ["from_tier", "to_tier"],
)
BREAKER_OPENS = Counter(
    "taskagent_breaker_opens", "Times a tier's circuit breaker opened or re-opened.", ["tier"]
)
MODEL_TOKENS = Counter(
    "taskagent_model_tokens",
    "Model tokens by tier and direction (input, output); estimated when a model reports none.",
    ["tier", "direction"],
)
MODEL_COST = Counter(
    "taskagent_model_cost_usd", "Model cost in USD by the price table (TASKAGENT_PRICES).", ["tier"]
)

TOOL_CALLS = Counter(
    "taskagent_tool_calls",
    "Tool calls by tool and outcome (ok, error, timeout, denied by the guard, rejected by the "
    "user).",
    ["tool", "outcome"],
)
RUNAWAY_STOPS = Counter(
    "taskagent_runaway_stops",
    "Loop breakers that fired: identical_call (a repeated call refused), oscillation, "
    "step_limit, turn_timeout.",
    ["reason"],
)
BUDGET_REJECTIONS = Counter(
    "taskagent_budget_rejections",
    "Model calls refused because a budget was used up, by budget "
    "(thread_tokens, user_day_tokens, user_day_usd).",
    ["kind"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "taskagent_rate_limit_rejections",
    "Requests answered 429 by the per-user limits, by limit (requests, tokens).",
    ["kind"],
)

ACTIVE_STREAMS = Gauge("taskagent_active_streams", "Open SSE connections.")
HTTP_REQUESTS = Counter(
    "taskagent_http_requests",
    "HTTP responses by method, route template and status code.",
    ["method", "route", "status"],
)
READY = Gauge("taskagent_ready", "1 when the last readiness check passed, else 0.")
READY_CHECKS = Gauge(
    "taskagent_ready_check", "Each readiness check's last result (1 ok, 0 failed).", ["check"]
)

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

# Series of known label values exist from the start at 0, so rate() and increase() see the
# first event instead of a series appearing out of nothing.
for _status in ("success", "error", "timeout", "interrupted"):
    RUNS.labels(_status)
for _reason in ("identical_call", "oscillation", "step_limit", "turn_timeout"):
    RUNAWAY_STOPS.labels(_reason)
for _budget in ("thread_tokens", "user_day_tokens", "user_day_usd"):
    BUDGET_REJECTIONS.labels(_budget)
for _limit in ("requests", "tokens"):
    RATE_LIMIT_REJECTIONS.labels(_limit)


class _Breaker(Protocol):
    name: str

    @property
    def state(self) -> str: ...


class _BreakerCollector(Collector):
    """Reads each tier's breaker when scraped: an open breaker turns half-open by time alone."""

    def __init__(self) -> None:
        self.breakers: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "taskagent_breaker_state",
            "Circuit breaker state per model tier: 0 closed, 1 half-open, 2 open.",
            labels=["tier"],
        )
        for name, breaker in sorted(self.breakers.items()):
            family.add_metric([name], BREAKER_STATES.get(breaker.state, 2))
        yield family


_breakers = _BreakerCollector()
REGISTRY.register(_breakers)


def track_breaker(breaker: _Breaker) -> None:
    """Export `breaker`'s state as `taskagent_breaker_state{tier=<its name>}` (newest wins)."""
    _breakers.breakers[breaker.name] = breaker


def model_call_failed(tier: str, exc: BaseException, started: float, timeout_s: float) -> None:
    """Count a failed model call: a cancellation at the node's deadline is a timeout."""
    if isinstance(exc, TimeoutError):
        outcome = "timeout"
    elif isinstance(exc, asyncio.CancelledError):
        # LangGraph's TimeoutPolicy arrives as a cancellation; only the elapsed time tells it
        # apart from a run being cancelled.
        outcome = "timeout" if time.monotonic() - started >= 0.95 * timeout_s else "cancelled"
    else:
        outcome = "error"
    MODEL_CALLS.labels(tier, outcome).inc()


def model_usage(tier: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
    """Count one successful model call with its tokens and cost."""
    MODEL_CALLS.labels(tier, "ok").inc()
    MODEL_TOKENS.labels(tier, "input").inc(input_tokens)
    MODEL_TOKENS.labels(tier, "output").inc(output_tokens)
    MODEL_COST.labels(tier).inc(cost_usd)


def tool_refusals(refused: list[tuple[str, str]]) -> None:
    """Count (tool, why) calls the guard refused (denied, identical_call) or the user rejected."""
    for tool, why in refused:
        TOOL_CALLS.labels(tool, "rejected" if why == "rejected" else "denied").inc()
        if why == "identical_call":
            RUNAWAY_STOPS.labels("identical_call").inc()


def is_first_token(event: str, data: Any) -> bool:
    """Whether a run event carries answer text: a chat `token` or a model `messages` chunk."""
    if event == "token":
        return True
    if event != "messages" or not isinstance(data, list | tuple) or len(data) != 2:
        return False
    chunk, meta = data
    return (
        isinstance(meta, dict)
        and meta.get("langgraph_node") == "model_call"
        and bool(getattr(chunk, "content", ""))
    )
