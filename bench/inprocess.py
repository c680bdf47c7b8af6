"""In-process workloads on the zero-delay scripted model: W1 first event/token and W5 durability.

W1 compares this product's turn (``RunManager.turn``: our graph, saver, thread index)
with raw LangGraph without a checkpointer (``bench.turns.build_raw_graph``), one fresh thread
per repetition, interleaved. W5 runs our compiled graph on our saver directly with
``durability="sync"`` (what the product uses), ``"async"`` and ``"exit"``, one thread per mode,
turns interleaved.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.types import Durability

from bench.turns import ZeroLatencyModel, build_raw_graph, open_product, user_message
from graph.context import Context

W1_MESSAGE = "create a task for the quarterly review"
MODES: tuple[Durability, ...] = ("sync", "async", "exit")


@dataclass
class Timing:
    """One turn: time to the first event, to the first token, and to the end (s)."""

    first_event: float
    first_token: float
    whole: float


@dataclass
class FirstEvents:
    """W1 in process: the timings of each variant."""

    raw: list[Timing] = field(default_factory=list)
    product: list[Timing] = field(default_factory=list)


def _has_text(message: Any) -> bool:
    return (
        isinstance(message, BaseMessage)
        and isinstance(message, AIMessage)
        and bool(message.content)
    )


async def _time_raw(graph: Any) -> Timing:
    human = HumanMessage(content=W1_MESSAGE, id=str(uuid.uuid4()))
    started = time.perf_counter()
    first_event = first_token = None
    async for mode, payload in graph.astream(
        {"messages": [human]}, stream_mode=["updates", "messages"]
    ):
        now = time.perf_counter() - started
        first_event = first_event if first_event is not None else now
        if first_token is None:
            if mode == "messages" and _has_text(payload[0]):
                first_token = now
            elif mode == "updates" and any(
                _has_text(m) for u in payload.values() for m in (u or {}).get("messages", [])
            ):
                first_token = now
    whole = time.perf_counter() - started
    assert first_event is not None and first_token is not None
    return Timing(first_event, first_token, whole)


async def _time_product(runner: Any, context: Context) -> Timing:
    started = time.perf_counter()
    first_event = first_token = None
    async for event in runner.turn(context=context, message=W1_MESSAGE):
        now = time.perf_counter() - started
        first_event = first_event if first_event is not None else now
        if first_token is None and event[0] == "token":
            first_token = now
    whole = time.perf_counter() - started
    assert first_event is not None and first_token is not None
    return Timing(first_event, first_token, whole)


async def first_events(workdir: Path, reps: int, warmups: int) -> FirstEvents:
    """W1 in process: fresh thread per repetition, variants alternating who goes first."""
    result = FirstEvents()
    raw = build_raw_graph(ZeroLatencyModel()).compile()
    runner, settings = await open_product(workdir / "w1")
    context = Context(user_id="bench", role="admin")
    variants: list[tuple[list[Timing], Callable[[], Awaitable[Timing]]]] = [
        (result.raw, lambda: _time_raw(raw)),
        (result.product, lambda: _time_product(runner, context)),
    ]
    try:
        gc.collect()
        gc.freeze()
        for number in range(warmups + reps):
            order = variants if number % 2 else variants[::-1]
            for sink, measure in order:
                gc.collect()
                timing = await measure()
                if number >= warmups:
                    sink.append(timing)
    finally:
        gc.unfreeze()
        await runner.close()
    return result


@dataclass
class Durabilities:
    """W5: per-turn wall times (s) for each durability mode, and the checkpoint DB size."""

    times: dict[str, list[float]] = field(default_factory=dict)
    turns: int = 0


async def durability(workdir: Path, turns: int) -> Durabilities:
    """W5: our graph and saver, one thread per mode, turns interleaved (rotating order)."""
    result = Durabilities(times={mode: [] for mode in MODES}, turns=turns)
    runner, _ = await open_product(workdir / "w5")
    context = Context(user_id="bench", role="admin")
    try:
        gc.collect()
        gc.freeze()
        for number in range(1, turns + 1):
            shift = number % len(MODES)
            for mode in [*MODES[shift:], *MODES[:shift]]:
                config: Any = {"configurable": {"thread_id": f"w5-{mode}"}}
                human = HumanMessage(content=user_message(number), id=str(uuid.uuid4()))
                gc.collect()
                started = time.perf_counter()
                await runner.runner.graph.ainvoke(
                    {"messages": [human]}, config, context=context, durability=mode
                )
                result.times[mode].append(time.perf_counter() - started)
    finally:
        gc.unfreeze()
        await runner.close()
    return result
