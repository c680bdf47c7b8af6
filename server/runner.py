"""Running turns: the one place that opens the saver, compiles the graph and drives a thread."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    HumanMessage,
    ToolMessage,
    messages_from_dict,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Overwrite

from graph.builder import build_graph
from graph.context import Context
from graph.services import Services, install_services, open_services
from graph.settings import Settings, get_settings
from server.retention import prune_before
from server.threads import ThreadIndex, ThreadInfo
from tools.codec import compressed_serde
from tools.sqlite import open_sqlite

EventKind = Literal["metadata", "token", "tool_call", "tool_result", "interrupt", "error", "done"]


class TurnError(Exception):
    """A request that cannot be served as asked; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class TurnResult:
    """What one turn produced, as `/chat` reports it."""

    thread_id: str
    run_id: str
    message: str
    tool_calls: list[dict[str, Any]]
    model_used: str
    fallback_used: bool
    latency_ms: float
    interrupt: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)


@dataclass
class TurnEvent:
    """One streamed step of a turn."""

    kind: EventKind
    data: dict[str, Any]


def _text(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
    )


def turn_messages(messages: list[AnyMessage]) -> list[AnyMessage]:
    """Return the messages of the newest turn: everything after the last user message."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return messages[index + 1 :]
    return messages


def tool_call_records(messages: list[AnyMessage]) -> list[dict[str, Any]]:
    """Pair each tool call of a turn with its result: [{tool, arguments, result}]."""
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    records: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, AIMessage):
            continue
        for call in message.tool_calls:
            reply = results.get(call["id"] or "")
            result: Any = None
            if reply is not None:
                try:
                    result = json.loads(_text(reply))
                except json.JSONDecodeError:
                    result = _text(reply)
            records.append({"tool": call["name"], "arguments": call["args"], "result": result})
    return records


class AgentRunner:
    """The compiled graph on its SQLite saver, plus the thread index; one per process."""

    def __init__(
        self,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        saver: AsyncSqliteSaver,
        services: Services,
        threads: ThreadIndex,
    ) -> None:
        self.graph = graph
        self.saver = saver
        self.services = services
        self.threads = threads
        # Threads with a run in progress in this process; any other "busy" thread was cut off.
        self._active: set[str] = set()

    @classmethod
    async def open(
        cls, settings: Settings | None = None, services: Services | None = None
    ) -> AgentRunner:
        """Open the databases under the data dir and compile the graph with the saver."""
        settings = settings or get_settings()
        services = services or await open_services(settings)
        install_services(services)
        conn = await open_sqlite(
            settings.checkpoint_db,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
        )
        saver = AsyncSqliteSaver(conn, serde=compressed_serde())
        await saver.setup()
        threads = await ThreadIndex.open(
            settings.tasks_db,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
        )
        graph = build_graph(settings).compile(checkpointer=saver, name="agent")
        return cls(graph, saver, services, threads)

    async def close(self) -> None:
        """Close every connection this runner opened."""
        await self.threads.close()
        await self.saver.conn.close()
        await self.services.tasks.close()
        install_services(None)

    async def check_access(self, thread_id: str, user_id: str) -> ThreadInfo:
        """Return the thread, or raise 404 unless it exists and belongs to `user_id`."""
        info = await self.threads.get(thread_id)
        if info is None or info.owner != user_id:
            raise TurnError(404, f"Thread {thread_id} not found.")
        return info

    async def _recover(self, info: ThreadInfo, context: Context) -> ThreadInfo:
        """Settle a thread whose last run never reported its end (the process died).

        Only then is the checkpoint itself consulted: a run cut off mid-way is finished from
        its last checkpoint, so the earlier turn is answered before anything new starts.
        """
        config: RunnableConfig = {"configurable": {"thread_id": info.thread_id}}
        state = await self.graph.aget_state(config)
        if state.next and not state.interrupts:
            await self.graph.ainvoke(None, config, context=context, durability="sync")
            state = await self.graph.aget_state(config)
        interrupt = _first_interrupt(state.interrupts)
        await self.threads.finish_run(
            info.thread_id, "interrupted" if interrupt else "idle", interrupt
        )
        recovered = await self.threads.get(info.thread_id)
        assert recovered is not None
        return recovered

    async def stream_turn(
        self,
        *,
        context: Context,
        message: str | None = None,
        thread_id: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> AsyncIterator[TurnEvent]:
        """Run one turn (a new message, a resume answer, or neither to finish a cut-off run)."""
        run_id = str(uuid.uuid4())
        info: ThreadInfo | None = None
        if thread_id is None:
            if message is None:
                raise TurnError(422, "Send a message (or a thread_id with resume).")
            thread_id = str(uuid.uuid4())
        else:
            info = await self.check_access(thread_id, context.user_id)
            if thread_id in self._active:
                raise TurnError(409, f"Thread {thread_id} is busy with another run; try again.")
            if info.status == "busy":
                info = await self._recover(info, context)
        graph_input: Any
        if resume is not None:
            if info is None or info.status != "interrupted":
                raise TurnError(
                    409, f"Thread {thread_id} is not waiting for an answer; nothing to resume."
                )
            graph_input = Command(resume=resume)
        elif message is not None:
            if info is not None and info.status == "interrupted":
                question = (info.interrupt or {}).get("question", "an approval")
                raise TurnError(
                    409,
                    f"Thread {thread_id} is waiting for approval: {question}"
                    ' Answer it with resume={"approved": true|false} first.',
                )
            graph_input = {"messages": [HumanMessage(content=message, id=str(uuid.uuid4()))]}
        else:
            graph_input = None
        if thread_id in self._active:
            raise TurnError(409, f"Thread {thread_id} is busy with another run; try again.")
        self._active.add(thread_id)
        try:
            async for event in self._run(thread_id, run_id, info, graph_input, context, message):
                yield event
        finally:
            self._active.discard(thread_id)

    async def _run(
        self,
        thread_id: str,
        run_id: str,
        info: ThreadInfo | None,
        graph_input: Any,
        context: Context,
        message: str | None,
    ) -> AsyncIterator[TurnEvent]:
        started = time.perf_counter()
        await self.threads.start_run(thread_id, context.user_id, message or "")
        yield TurnEvent("metadata", {"thread_id": thread_id, "run_id": run_id})

        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id},
            "run_id": uuid.UUID(run_id),
        }
        values: dict[str, Any] = {}
        interrupt: dict[str, Any] | None = None
        streamed: set[str] = set()
        try:
            if graph_input is not None:
                parts: AsyncIterator[Any] = self.graph.astream(
                    graph_input,
                    config,
                    context=context,
                    stream_mode=["messages", "updates", "values"],
                    durability="sync",
                )
                async for mode, payload in parts:
                    if mode == "values":
                        values = payload
                    elif mode == "messages":
                        chunk, meta = payload
                        if (
                            isinstance(chunk, AIMessageChunk)
                            and meta.get("langgraph_node") == "model_call"
                        ):
                            text = _text(chunk)
                            if text:
                                streamed.add(chunk.id or "")
                                yield TurnEvent("token", {"text": text})
                    else:
                        for node, update in payload.items():
                            if node == "__interrupt__":
                                interrupt = interrupt or _first_interrupt(update)
                                for item in update:
                                    yield TurnEvent(
                                        "interrupt", {"value": item.value, "id": item.id}
                                    )
                                continue
                            for event in _update_events(update, streamed):
                                yield event
            else:
                # Nothing new to run: report the thread as it stands.
                values = (await self.graph.aget_state(config)).values
        except BaseException:
            await self.threads.finish_run(thread_id, "error")
            raise
        await self.threads.finish_run(thread_id, "interrupted" if interrupt else "idle", interrupt)
        await self._prune(thread_id, info, str(values.get("history_floor", "")))

        messages = turn_messages(values.get("messages", []))
        final = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        result = TurnResult(
            thread_id=thread_id,
            run_id=run_id,
            message=str(interrupt.get("question", ""))
            if interrupt
            else _text(final)
            if final
            else "",
            tool_calls=tool_call_records(messages),
            model_used=str(values.get("model_used", "")),
            fallback_used=bool(values.get("fallback_used", False)),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            interrupt=interrupt,
            failures=list(values.get("failures", [])),
        )
        yield TurnEvent("done", result.__dict__)

    async def _prune(self, thread_id: str, info: ThreadInfo | None, floor: str) -> None:
        if floor and (info is None or floor != info.history_floor):
            await prune_before(self.saver, thread_id, floor)
            await self.threads.set_history_floor(thread_id, floor)

    async def run_turn(
        self,
        *,
        context: Context,
        message: str | None = None,
        thread_id: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> TurnResult:
        """Run one turn to its end (or its interrupt) and return the result."""
        result: dict[str, Any] | None = None
        async for event in self.stream_turn(
            context=context, message=message, thread_id=thread_id, resume=resume
        ):
            if event.kind == "done":
                result = event.data
        assert result is not None
        return TurnResult(**result)

    async def history(self, thread_id: str) -> list[AnyMessage]:
        """Return the whole conversation: archived messages, then the working window."""
        archived = [
            json.loads(body) for body in await self.services.tasks.archived_messages(thread_id)
        ]
        state = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        return [*messages_from_dict(archived), *state.values.get("messages", [])]


def _first_interrupt(interrupts: Any) -> dict[str, Any] | None:
    for item in interrupts or ():
        value = item.value
        return dict(value) if isinstance(value, dict) else {"value": value}
    return None


def _update_events(update: Any, streamed: set[str]) -> list[TurnEvent]:
    events: list[TurnEvent] = []
    if not isinstance(update, dict):
        return events
    messages = update.get("messages") or []
    if isinstance(messages, Overwrite):
        messages = messages.value[-1:]
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                events.append(
                    TurnEvent(
                        "tool_call",
                        {"id": call["id"], "tool": call["name"], "arguments": call["args"]},
                    )
                )
            text = _text(message)
            if text and (message.id or "") not in streamed:
                events.append(TurnEvent("token", {"text": text}))
        elif isinstance(message, ToolMessage):
            try:
                result: Any = json.loads(_text(message))
            except json.JSONDecodeError:
                result = _text(message)
            events.append(
                TurnEvent(
                    "tool_result",
                    {"id": message.tool_call_id, "tool": message.name, "result": result},
                )
            )
    return events
