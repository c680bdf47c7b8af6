"""W2: per-turn overhead and storage of one long thread: raw LangGraph, stock saver, this product.

Every variant drives the same zero-latency scripted model through realistic 4-message turns
(human, AI tool call, tool, AI answer), so the wall time of a turn is the framework's and the
product's overhead, not the model's. The variants run interleaved turn by turn.
"""

from __future__ import annotations

import os

# Production runs with strict msgpack (the Makefile exports it); measure that configuration.
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")

import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any, Literal  # noqa: E402

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from graph.context import Context  # noqa: E402
from graph.services import Services  # noqa: E402
from graph.settings import Settings  # noqa: E402
from models.providers import Tier  # noqa: E402
from models.resilience import CircuitBreaker  # noqa: E402
from server.runs.engine import RunManager  # noqa: E402
from tools.store import TaskStore  # noqa: E402

LIST_LIMIT = 5  # keeps list_tasks results the same size at turn 10 and turn 300


# --------------------------------------------------------------------------- the model


class ZeroLatencyModel(BaseChatModel):
    """Answers a user message with one tool call and a tool result with a short text.

    "create ..." messages get a create_task call, anything else a list_tasks call; the
    reply is computed from the last message only, so it costs the same at any thread length.
    """

    @property
    def _llm_type(self) -> str:
        return "bench-zero-latency"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ZeroLatencyModel:
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"Done: {last.name} succeeded.")
        text = last.text
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        args: dict[str, Any]
        if text.startswith("create "):
            name, args = "create_task", {"title": text[len("create ") :], "priority": "high"}
        else:
            name, args = "list_tasks", {"limit": LIST_LIMIT}
        return AIMessage(
            content="",
            tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}],
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Overridden so the async path does not hop to a thread pool (no model latency at all).
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])


def user_message(turn: int) -> str:
    """Alternate creating and listing, like a user filling and reviewing a list."""
    return f"create task number {turn}" if turn % 2 else "list my tasks"


# --------------------------------------------------------------------------- raw LangGraph


class RawState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build_raw_graph(model: BaseChatModel) -> StateGraph[RawState, None, RawState, RawState]:
    """The same loop as the product (model ⇄ tools) with a trivial in-memory tool."""
    tasks: list[dict[str, Any]] = []

    async def call_model(state: RawState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    async def run_tools(state: RawState) -> dict[str, Any]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        replies: list[ToolMessage] = []
        for call in last.tool_calls:
            if call["name"] == "create_task":
                task = {"id": f"TASK-{len(tasks) + 1:04d}", **call["args"]}
                tasks.append(task)
                result: dict[str, Any] = {"ok": True, "task": task}
            else:
                result = {"ok": True, "tasks": tasks[-LIST_LIMIT:]}
            replies.append(
                ToolMessage(
                    content=json.dumps(result), tool_call_id=call["id"] or "", name=call["name"]
                )
            )
        return {"messages": replies}

    def after_model(state: RawState) -> Literal["tools", "done"]:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else "done"

    builder = StateGraph(RawState)
    builder.add_node("model", call_model)
    builder.add_node("tools", run_tools)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", after_model, {"tools": "tools", "done": END})
    builder.add_edge("tools", "model")
    return builder


# --------------------------------------------------------------------------- measurement


@dataclass
class Run:
    """Per-turn wall times of one variant and its storage."""

    name: str
    times: list[float] = field(default_factory=list)
    db_bytes: int | None = None
    db_files: list[str] = field(default_factory=list)
    check: str = ""

    def window(self, first: int, last: int) -> list[float]:
        """Wall times (ms) of turns first..last, 1-based and inclusive."""
        return [t * 1000 for t in self.times[first - 1 : last]]


class Variant:
    """One way of running the thread: open it, run a turn, close it and measure the files."""

    name = ""

    def __init__(self) -> None:
        self.run = Run(self.name)

    async def open(self) -> None:
        """Build the graph and open whatever it needs."""

    async def turn(self, number: int) -> None:
        """Run turn `number` (1-based) of the thread."""
        raise NotImplementedError

    async def close(self) -> None:
        """Check the thread is whole, close connections and record the storage."""


def sqlite_bytes(paths: Sequence[Path]) -> int:
    """Bytes on disk of each database after folding its WAL back in (file + -wal + -shm)."""
    total = 0
    for path in paths:
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{path}{suffix}")
            if part.exists():
                total += part.stat().st_size
    return total


class RawGraph(Variant):
    """(a) LangGraph without a checkpointer; the caller carries the state between turns."""

    name = "(a) raw LangGraph, no checkpointer"

    async def open(self) -> None:
        self.graph = build_raw_graph(ZeroLatencyModel()).compile()
        self.messages: list[AnyMessage] = []

    async def turn(self, number: int) -> None:
        human = HumanMessage(content=user_message(number), id=str(uuid.uuid4()))
        state = await self.graph.ainvoke({"messages": [*self.messages, human]})
        self.messages = state["messages"]

    async def close(self) -> None:
        self.run.check = f"{len(self.messages)} messages in state"


class StockSaver(Variant):
    """(b) LangGraph with the stock AsyncSqliteSaver and a plain add_messages list."""

    name = "(b) LangGraph + AsyncSqliteSaver, add_messages list"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.path = workdir / "stock.sqlite"
        self.config: Any = {"configurable": {"thread_id": "bench"}}
        self.stack = contextlib.AsyncExitStack()

    async def open(self) -> None:
        saver = await self.stack.enter_async_context(
            AsyncSqliteSaver.from_conn_string(str(self.path))
        )
        self.graph = build_raw_graph(ZeroLatencyModel()).compile(checkpointer=saver)

    async def turn(self, number: int) -> None:
        human = HumanMessage(content=user_message(number), id=str(uuid.uuid4()))
        await self.graph.ainvoke({"messages": [human]}, self.config)

    async def close(self) -> None:
        state = await self.graph.aget_state(self.config)
        self.run.check = f"{len(state.values['messages'])} messages in state"
        await self.stack.aclose()
        self.run.db_files = [self.path.name]
        self.run.db_bytes = sqlite_bytes([self.path])


async def open_product(data_dir: Path) -> tuple[RunManager, Settings]:
    """This product's run engine on `data_dir` with the zero-latency model as its only tier.

    Budgets are checked but unlimited: 300 turns would spend a thread's default budget.
    """
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        budget_tokens_per_thread=0,
        budget_tokens_per_user_day=0,
        budget_usd_per_user_day=0,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tier = Tier(
        name="offline",
        label="bench:zero-latency",
        model=ZeroLatencyModel(),
        breaker=CircuitBreaker(),
    )
    tasks = await TaskStore.open(settings.tasks_db, synchronous=settings.sqlite_synchronous)
    runs = await RunManager.open(
        settings, services=Services(settings=settings, tiers=[tier], tasks=tasks)
    )
    return runs, settings


class Product(Variant):
    """(c) This product: AgentRunner with our graph, saver and task store, one thread."""

    name = "(c) this product (RunManager.run_turn)"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir / "product"
        self.settings = Settings(_env_file=None, data_dir=self.workdir)
        self.context = Context(user_id="bench", role="admin")
        self.thread_id: str | None = None

    async def open(self) -> None:
        self.runner, self.settings = await open_product(self.workdir)

    async def turn(self, number: int) -> None:
        result = await self.runner.run_turn(
            context=self.context, message=user_message(number), thread_id=self.thread_id
        )
        self.thread_id = result.thread_id
        if not result.message.startswith("Done:") or len(result.tool_calls) != 1:
            raise RuntimeError(f"turn {number} went wrong: {result}")

    async def close(self) -> None:
        assert self.thread_id is not None
        history = await self.runner.runner.history(self.thread_id)
        created = await self.runner.runner.services.tasks.count()
        self.run.check = f"{len(history)} messages in history, {created} tasks"
        await self.runner.close()
        self.run.db_files = [self.settings.checkpoint_db.name, self.settings.tasks_db.name]
        self.run.db_bytes = sqlite_bytes([self.settings.checkpoint_db, self.settings.tasks_db])


async def run_interleaved(variants: Sequence[Variant], turns: int, load: list[float]) -> None:
    """Run turn n of every variant before turn n+1 of any, rotating who goes first.

    Interleaving exposes all variants to the same machine load at the same turn number
    (the machine is shared); collecting garbage between turns keeps one variant's heap
    from billing its collections to the next.
    """
    for variant in variants:
        await variant.open()
    # Freeze the import-time heap so the collections between turns only walk what the
    # threads allocated (a full collection of everything takes ~100 ms here).
    gc.collect()
    gc.freeze()
    load.append(os.getloadavg()[0])
    for number in range(1, turns + 1):
        shift = number % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            gc.collect()
            started = time.perf_counter()
            await variant.turn(number)
            variant.run.times.append(time.perf_counter() - started)
        if number % 25 == 0:
            load.append(os.getloadavg()[0])
    for variant in variants:
        await variant.close()
    gc.unfreeze()


async def long_thread(workdir: Path, turns: int) -> tuple[dict[str, Run], list[float]]:
    """Run the three variants interleaved for `turns` turns; return their runs and load samples."""
    load: list[float] = []
    workdir.mkdir(parents=True, exist_ok=True)
    variants = {"a": RawGraph(), "b": StockSaver(workdir), "c": Product(workdir)}
    await run_interleaved(list(variants.values()), turns, load)
    return {key: variant.run for key, variant in variants.items()}, load
