"""Model faults: the real server's ChatOllama / ChatOpenAI tiers against failing fake peers.

The fake Ollama and OpenAI servers of `tests/fakes/llm_servers.py` run in this process on
127.0.0.1; the real server is pointed at them (Ollama first, then OpenAI, then the offline
engine). For each fault kind the Ollama tier misbehaves for a series of turns; then it is
healed, and after the breaker's cool-down one more turn must be answered by Ollama again.

Counted per kind: turns answered / attempted, which tier answered, the slowest turn against
the per-turn timeout, and the Ollama breaker as `/health` reports it (open after the faults,
closed again after the cool-down and one good call).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from faults.client import chat_body
from faults.server import ServerProcess
from tests.fakes.llm_servers import (
    Behaviour,
    FakeOllamaServer,
    FakeOpenAIServer,
    Reply,
    _Handler,
    cut_mid_stream,
    hang,
    status,
    text,
    tool_call,
    tool_call_raw,
)

MODEL_TIMEOUT_S = 1.0
MAX_ATTEMPTS = 2
BREAKER_THRESHOLD = 2
BREAKER_COOLDOWN_S = 1.0
TURN_TIMEOUT_S = 20.0
SLOW_CHUNK_DELAY_S = 0.4  # 4 characters per chunk: ~10 s for a 100-character answer


class PacedOllama(FakeOllamaServer):
    """The fake Ollama, optionally streaming each chunk after a delay (a slow model)."""

    chunk_delay_s = 0.0

    def _chat(self, handler: _Handler, body: dict[str, Any], behaviour: Any) -> None:
        delay = self.chunk_delay_s
        if delay:
            write_chunk = handler.write_chunk

            def slowly(data: bytes) -> None:
                time.sleep(delay)
                write_chunk(data)

            handler.write_chunk = slowly  # type: ignore[method-assign]
        try:
            super()._chat(handler, body, behaviour)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on the slow answer: that is the point


@dataclass
class ModelFault:
    """One fault kind: what the peers do, and what the user asks meanwhile."""

    name: str
    injected: str
    message: str
    ollama: Callable[[], Behaviour] | None = None
    openai: Callable[[], Behaviour] | None = None
    ollama_script: Callable[[], list[Behaviour]] | None = None
    slow: bool = False
    expected_tier: str = "openai:small"


FAULTS = (
    ModelFault(
        "hang",
        "Ollama accepts the request and never answers",
        "what is on my list today?",
        ollama=lambda: hang(60),
        openai=lambda: text("Here is your day."),
    ),
    ModelFault(
        "slow stream",
        f"Ollama streams 4 characters every {SLOW_CHUNK_DELAY_S:g} s (a 100-character answer"
        " takes 10 s)",
        "summarize my week",
        ollama=lambda: text("A very slow answer. " * 5),
        openai=lambda: text("Your week, summarized."),
        slow=True,
    ),
    ModelFault(
        "mid-stream cut",
        "Ollama starts streaming, then drops the connection",
        "anything overdue?",
        ollama=lambda: cut_mid_stream(),
        openai=lambda: text("Nothing is overdue."),
    ),
    ModelFault(
        "500s",
        "Ollama answers HTTP 500 to every call",
        "how many tasks do I have?",
        ollama=lambda: status(500),
        openai=lambda: text("You have a few tasks."),
    ),
    ModelFault(
        "429 storm",
        "Ollama and OpenAI both answer 429 with Retry-After: 1 to every call",
        "Create a task called Storm check, low priority",
        ollama=lambda: status(429, retry_after=1),
        openai=lambda: status(429, retry_after=1),
        expected_tier="offline-engine",
    ),
    ModelFault(
        "malformed tool calls",
        "Ollama's tool call has arguments that are not JSON, then a valid call, then text",
        "Create a task called Repair check, low priority",
        ollama_script=lambda: [
            tool_call_raw("create_task", '{"title": "Repair check" "priority": }'),
            tool_call("create_task", {"title": "Repair check", "priority": "low"}),
            text("Created it."),
        ],
        expected_tier="ollama:tiny",
    ),
)


@dataclass
class ModelReport:
    """What one fault kind did to the turns."""

    name: str
    injected: str
    expected_tier: str
    attempted: int = 0
    answered: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)
    max_latency_s: float = 0.0
    breaker_after_faults: str = ""
    breaker_after_cooldown: str = ""
    healed_tier: str = ""
    min_retry_gap_s: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def zero(self) -> bool:
        """Every turn answered within the timeout; the breaker opened and closed again."""
        # half_open: the cool-down already ran out while the rest of the chain answered.
        opened = self.breaker_after_faults in ("open", "half_open")
        breaker_ok = opened or self.name == "malformed tool calls"
        return (
            self.answered == self.attempted
            and self.max_latency_s < TURN_TIMEOUT_S
            and breaker_ok
            and self.breaker_after_cooldown == "closed"
            and self.healed_tier == "ollama:tiny"
            and (self.min_retry_gap_s is None or self.min_retry_gap_s >= 1.0)
        )


async def breaker(http: httpx.AsyncClient, tier: str) -> str:
    """The breaker state `/health` reports for `tier`."""
    health = (await http.get("/health")).json()
    return next(str(t["breaker"]) for t in health["tiers"] if t["name"] == tier)


async def chat_turn(http: httpx.AsyncClient, message: str) -> tuple[bool, str, float]:
    """One /chat turn: (answered, model_used, seconds)."""
    started = time.monotonic()
    try:
        reply = await http.post("/chat", json=chat_body(message), timeout=TURN_TIMEOUT_S * 2)
    except httpx.HTTPError:
        return False, "", time.monotonic() - started
    seconds = time.monotonic() - started
    if reply.status_code != 200:
        return False, f"HTTP {reply.status_code}", seconds
    body = reply.json()
    return bool(body.get("message")), str(body.get("model_used", "")), seconds


async def run_fault(
    http: httpx.AsyncClient,
    ollama: PacedOllama,
    openai: FakeOpenAIServer,
    fault: ModelFault,
    turns: int,
) -> ModelReport:
    """Inject one fault for `turns` turns, then heal it and watch the breaker close."""
    report = ModelReport(fault.name, fault.injected, fault.expected_tier)
    ollama.reset()
    openai.reset()
    ollama.chunk_delay_s = SLOW_CHUNK_DELAY_S if fault.slow else 0.0
    ollama.default = fault.ollama() if fault.ollama else text("ok")
    openai.default = fault.openai() if fault.openai else text("ok")
    for _ in range(turns):
        if fault.ollama_script is not None:
            ollama.script(*fault.ollama_script())
        answered, tier, seconds = await chat_turn(http, fault.message)
        report.attempted += 1
        report.answered += answered
        report.by_tier[tier] = report.by_tier.get(tier, 0) + 1
        report.max_latency_s = max(report.max_latency_s, seconds)
        if not answered:
            report.problems.append(f"turn not answered: {tier}")
    report.breaker_after_faults = await breaker(http, "ollama")
    if fault.name == "429 storm":
        # Retry-After: 1 must be honoured: no retry to the same peer sooner than that.
        sent = [request.received_at for request in ollama.chat_requests]
        gaps = [later - earlier for earlier, later in zip(sent, sent[1:], strict=False)]
        report.min_retry_gap_s = min(gaps) if gaps else None
    # Heal Ollama; after the cool-down one trial call goes through and closes the breaker.
    ollama.chunk_delay_s = 0.0
    ollama.reset()
    ollama.default = Reply(content="Back to normal.")
    openai.default = text("ok")
    await asyncio.sleep(BREAKER_COOLDOWN_S + 0.2)
    answered, tier, _ = await chat_turn(http, "hello again, what is new?")
    report.healed_tier = tier if answered else f"unanswered ({tier})"
    report.breaker_after_cooldown = await breaker(http, "ollama")
    return report


async def run_model_faults(turns: int, workdir: Path) -> list[ModelReport]:
    """Run every fault kind for `turns` turns against one server; return one report each."""
    with PacedOllama() as ollama, FakeOpenAIServer() as openai:
        server = ServerProcess(
            workdir / "data",
            env={
                "OLLAMA_BASE_URL": ollama.url,
                "OLLAMA_MODEL": "tiny",
                "OPENAI_BASE_URL": openai.base_url,
                "OPENAI_MODEL": "small",
                "TASKAGENT_MODEL_TIMEOUT_S": str(MODEL_TIMEOUT_S),
                "TASKAGENT_MODEL_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
                "TASKAGENT_RETRY_INITIAL_S": "0.05",
                "TASKAGENT_RETRY_MAX_S": "2",
                "TASKAGENT_BREAKER_THRESHOLD": str(BREAKER_THRESHOLD),
                "TASKAGENT_BREAKER_COOLDOWN_S": str(BREAKER_COOLDOWN_S),
                "TASKAGENT_TURN_TIMEOUT_S": str(TURN_TIMEOUT_S),
            },
            log_path=workdir / "server.log",
        )
        await asyncio.to_thread(server.start)
        try:
            async with httpx.AsyncClient(base_url=server.url) as http:
                return [await run_fault(http, ollama, openai, f, turns) for f in FAULTS]
        finally:
            await asyncio.to_thread(server.stop)
