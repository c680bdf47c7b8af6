"""Running turns: the one place that opens the saver, compiles the graph and drives a thread."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    messages_from_dict,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

from graph.checkpointer import open_saver
from graph.context import Context
from graph.services import Services, open_services
from graph.settings import Settings, get_settings
from server.observability.tracing import Tracer, finish
from server.runs.client_input import RefusedInput, user_messages
from server.runs.graphs import TASK_AGENT, GraphRegistry, ServedGraph, load_graphs
from server.runs.retention import prune_before
from server.runs.threads import ThreadIndex, ThreadInfo, ThreadStatus
from tools.approval import UnusableDecision, from_decisions
from tools.audit import summarize
from tools.text import printable

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
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedRun:
    """A request checked against its thread and turned into graph input."""

    thread_id: str
    info: ThreadInfo | None
    graph_input: Any
    title: str
    # With no input: continue the thread's cut-off run from its last checkpoint.
    continue_run: bool = False


@dataclass
class RunOutcome:
    """What a finished execution left behind: final values and the interrupt it waits on."""

    values: dict[str, Any] = field(default_factory=dict)
    interrupt: dict[str, Any] | None = None
    interrupts: list[Any] = field(default_factory=list)


@dataclass
class TurnEvent:
    """One streamed step of a turn."""

    kind: EventKind
    data: dict[str, Any]


def message_text(message: BaseMessage) -> str:
    """The message's text, whatever shape its content has."""
    return message.text


def tool_result(message: ToolMessage) -> Any:
    """A tool message's result: its JSON, or its text when it is not JSON."""
    try:
        return json.loads(message.text)
    except json.JSONDecodeError:
        return message.text


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
            result = None if reply is None else tool_result(reply)
            records.append({"tool": call["name"], "arguments": call["args"], "result": result})
    return records


class AgentRunner:
    """The compiled graph on its SQLite saver, plus the thread index; one per process."""

    def __init__(
        self,
        graphs: GraphRegistry,
        saver: AsyncSqliteSaver,
        services: Services,
        threads: ThreadIndex,
    ) -> None:
        self.graphs = graphs
        # The task agent: the graph of the chat endpoints, the CLI and MCP.
        self.graph = graphs.get(TASK_AGENT).graph
        self.saver = saver
        self.services = services
        self.threads = threads
        self.tracer = Tracer(services.redactor)

    @classmethod
    async def open(
        cls, settings: Settings | None = None, services: Services | None = None
    ) -> AgentRunner:
        """Open the databases under the data dir and compile the graph with the saver."""
        settings = settings or get_settings()
        services = services or await open_services(settings)
        saver = await open_saver(settings)
        threads = await ThreadIndex.open(
            settings.tasks_db,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
        )
        graphs = await load_graphs(settings, services, saver)
        return cls(graphs, saver, services, threads)

    def graph_of(self, info: ThreadInfo | None) -> ServedGraph:
        """The graph a thread runs on: the one its first run recorded, else the task agent."""
        graph_id = (info.metadata.get("graph_id") if info is not None else None) or TASK_AGENT
        served = self.graphs.find(str(graph_id))
        if served is None:
            raise TurnError(
                409, f"Thread runs graph {graph_id!r}, which this server no longer serves."
            )
        return served

    async def close(self) -> None:
        """Close every connection this runner opened."""
        self.tracer.flush()
        await self.threads.close()
        await self.saver.conn.close()
        await self.services.tasks.close()

    async def check_access(self, thread_id: str, user_id: str) -> ThreadInfo:
        """Return the thread, or raise 404 unless it exists and belongs to `user_id`."""
        info = await self.threads.get(thread_id)
        if info is None or info.owner != user_id:
            raise TurnError(404, f"Thread {thread_id} not found.")
        return info

    async def prepare(
        self,
        *,
        context: Context,
        thread_id: str | None,
        message: str | None = None,
        resume: Any = None,
        graph_input: Any = None,
        strict_pending: bool = True,
    ) -> PreparedRun:
        """Check a request against the thread's state and turn it into graph input.

        `message` is a user turn, `resume` answers the pending approval (strict: refused when
        nothing waits), `graph_input` is raw graph input from the Agent Server protocol; with
        none of them a run cut off by a crash is finished. Raises TurnError with the status
        to answer with. A thread whose run was cut off is never settled here: the run engine
        takes that run over (its lease expired) before any later run of the thread starts.
        """
        info: ThreadInfo | None = None
        if thread_id is None:
            if message is None and graph_input is None:
                raise TurnError(422, "Send a message (or a thread_id with resume).")
            thread_id = str(uuid.uuid4())
        else:
            info = await self.check_access(thread_id, context.user_id)
        title = message or ""
        if resume is not None:
            if info is None or info.status != "interrupted":
                raise TurnError(
                    409, f"Thread {thread_id} is not waiting for an answer; nothing to resume."
                )
            run_input: Any = Command(resume=await self._bound_answer(thread_id, resume))
        elif message is not None or graph_input is not None:
            if strict_pending and info is not None and info.status == "interrupted":
                question = (info.interrupt or {}).get("question", "an approval")
                raise TurnError(
                    409,
                    f"Thread {thread_id} is waiting for approval: {question}"
                    ' Answer it with resume={"approved": true|false} first.',
                )
            if message is not None:
                run_input = {"messages": [HumanMessage(content=message, id=str(uuid.uuid4()))]}
            else:
                # Only user messages, each checked, ever enter the graph from a client.
                try:
                    run_input = {"messages": user_messages(graph_input, self.services.settings)}
                except RefusedInput as exc:
                    raise TurnError(422, str(exc)) from None
                title = title_of(run_input)
        else:
            run_input = None
        return PreparedRun(thread_id=thread_id, info=info, graph_input=run_input, title=title)

    async def _bound_answer(self, thread_id: str, answer: Any) -> dict[str, Any]:
        """Bind an approval answer to the one question the thread waits on, or refuse it.

        The answer may name the call it answers (`tool_call_id`, and `approval_id` from the
        question); the plain `{"approved": true}` answers the question waiting, when exactly
        one is, and so does LangChain's `{"decisions": [{"type": "approve"}]}` (or a reject,
        whose `message` reaches the model). The graph acts on an answer only for the question
        it was bound to here.
        """
        try:
            decided = from_decisions(answer)
        except UnusableDecision as exc:
            raise TurnError(422, str(exc)) from None
        # Only a reject decision's message (bounded there) is passed on to the model.
        reason = decided.get("reason") if decided is not answer else None
        answer = decided
        if not isinstance(answer, dict) or not isinstance(answer.get("approved"), bool):
            raise TurnError(
                422,
                'Answer an approval with {"approved": true} or {"approved": false}, and the'
                ' "tool_call_id" of the call it answers, or with {"decisions": [{"type":'
                ' "approve"}]} or [{"type": "reject"}].',
            )
        state = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        asked = [
            dict(item.value)
            for item in state.interrupts
            if isinstance(item.value, dict) and item.value.get("type") == "approval"
        ]
        matching = [
            question
            for question in asked
            if answer.get("tool_call_id") in (None, question.get("tool_call_id"))
            and answer.get("approval_id") in (None, question.get("approval_id"))
        ]
        if not asked:
            raise TurnError(
                409, f"Thread {thread_id} is not waiting for an answer; nothing to resume."
            )
        if len(matching) != 1:
            waiting = "; ".join(
                f"{q.get('question', 'an approval')} (tool_call_id {q.get('tool_call_id')})"
                for q in asked
            )
            raise TurnError(
                409,
                f"Thread {thread_id} is waiting for: {waiting}. This answer is not for"
                " exactly one of them; nothing was done.",
            )
        question = matching[0]
        bound = {
            "approved": answer["approved"],
            "tool_call_id": question.get("tool_call_id"),
            "approval_id": question.get("approval_id"),
        }
        if reason is not None:
            bound["reason"] = reason
        return bound

    async def execute(
        self,
        prepared: PreparedRun,
        context: Context,
        run_id: str,
        outcome: RunOutcome,
        modes: tuple[str, ...] = ("messages", "updates", "values"),
    ) -> AsyncIterator[tuple[str, Any]]:
        """Run the graph for a prepared request, yielding LangGraph's (mode, payload) parts.

        Records the thread busy while it runs and how it ended afterwards; fills `outcome`
        with the final values and the pending interrupt. A cancelled run leaves the thread
        idle at its last checkpoint. The run engine makes sure one run at a time drives a thread.
        """
        thread_id = prepared.thread_id
        await self.threads.start_run(thread_id, context.user_id, prepared.title)
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id},
            "run_id": uuid.UUID(run_id),
            "metadata": {"run_id": run_id},
        }
        wanted = tuple(dict.fromkeys((*modes, "updates", "values")))
        try:
            if prepared.graph_input is not None or prepared.continue_run:
                async with self.tracer.turn(
                    thread_id=thread_id,
                    run_id=run_id,
                    context=context,
                    inputs=_trace_inputs(prepared),
                ) as root:
                    parts: AsyncIterator[Any] = self.graph.astream(
                        prepared.graph_input,
                        config,
                        context=context,
                        stream_mode=cast(Any, list(wanted)),
                        durability="sync",
                    )
                    async for mode, payload in parts:
                        if mode == "values":
                            outcome.values = payload
                        elif mode == "updates" and "__interrupt__" in payload:
                            outcome.interrupt = outcome.interrupt or _first_interrupt(
                                payload["__interrupt__"]
                            )
                            outcome.interrupts.extend(payload["__interrupt__"])
                        if mode in modes:
                            yield mode, payload
                    finish(root, outcome.values, outcome.interrupt, self._tier_name(outcome))
            else:
                # Nothing new to run: report the thread as it stands.
                outcome.values = (await self.graph.aget_state(config)).values
        except asyncio.CancelledError:
            await self.threads.finish_run(thread_id, "idle")
            raise
        except BaseException:
            await self.threads.finish_run(thread_id, "error")
            raise
        status: ThreadStatus = "interrupted" if outcome.interrupt else "idle"
        await self.threads.finish_run(thread_id, status, outcome.interrupt)
        await self._prune(thread_id, prepared.info, str(outcome.values.get("history_floor", "")))

    async def reached_graph(self, thread_id: str, run_id: str, payload: dict[str, Any]) -> bool:
        """Whether a run's input got into the thread before its previous process died.

        If not, continuing "from the last checkpoint" would finish the thread's previous turn
        and silently drop this one: such a run starts over from its request instead. A new
        message is in once a checkpoint carries the run's id; an approval is in once it is
        recorded against the interrupt, which then no longer waits (no checkpoint yet).
        """
        config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        async for _ in self.saver.alist(config, filter={"run_id": run_id}, limit=1):
            return True
        command = payload.get("command") or {}
        if payload.get("resume") is None and command.get("resume") is None:
            return False
        state = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        return not state.interrupts

    async def stop_for_time(self, thread_id: str, limit_s: float) -> str:
        """End a turn that ran out of time with an answer saying what it did and why it stopped."""
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        state = await self.graph.aget_state(config)
        ran = [
            f"{m.name} ({summarize(_json_or_empty(m.content))})"
            for m in turn_messages(state.values.get("messages", []))
            if isinstance(m, ToolMessage)
        ]
        answer = f"I stopped because this turn took longer than {limit_s:g} s."
        answer += f" Before that I ran: {'; '.join(ran)}." if ran else " Nothing was changed."
        stop = AIMessage(content=answer, response_metadata={"model_used": "timeout"})
        await self.graph.aupdate_state(config, {"messages": [stop]}, as_node="model_call")
        await self.threads.finish_run(thread_id, "idle")
        return answer

    async def values(self, thread_id: str) -> dict[str, Any]:
        """Return the thread's current values."""
        state = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        return dict(state.values)

    async def settle(self, thread_id: str) -> None:
        """Record the thread idle, or interrupted with the question it waits on."""
        state = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        interrupt = None
        for item in state.interrupts:
            interrupt = item.value if isinstance(item.value, dict) else {"value": item.value}
            break
        await self.threads.finish_run(thread_id, "interrupted" if interrupt else "idle", interrupt)

    def _tier_name(self, outcome: RunOutcome) -> str:
        index = outcome.values.get("tier", 0)
        tiers = self.services.tiers
        return tiers[index].name if isinstance(index, int) and 0 <= index < len(tiers) else "none"

    async def _prune(self, thread_id: str, info: ThreadInfo | None, floor: str) -> None:
        if floor and (info is None or floor != info.history_floor):
            await prune_before(self.saver, thread_id, floor)
            await self.threads.set_history_floor(thread_id, floor)

    async def history(self, thread_id: str) -> list[AnyMessage]:
        """Return the whole conversation: archived messages, then the working window."""
        archived = [
            json.loads(body) for body in await self.services.tasks.archived_messages(thread_id)
        ]
        state = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        return [*messages_from_dict(archived), *state.values.get("messages", [])]


def _trace_inputs(prepared: PreparedRun) -> dict[str, Any]:
    if isinstance(prepared.graph_input, Command):
        return {"thread_id": prepared.thread_id, "resume": prepared.graph_input.resume}
    if prepared.graph_input is None:
        return {"thread_id": prepared.thread_id, "continue": True}
    return {"thread_id": prepared.thread_id, "input": prepared.graph_input}


def _first_interrupt(interrupts: Any) -> dict[str, Any] | None:
    for item in interrupts or ():
        value = item.value
        return dict(value) if isinstance(value, dict) else {"value": value}
    return None


def title_of(graph_input: Any) -> str:
    """A thread title from graph input: its last message, cut to 80 characters."""
    if isinstance(graph_input, dict):
        for message in reversed(graph_input.get("messages") or []):
            if isinstance(message, dict):
                return printable(str(message.get("content", "")))[:80]
            if isinstance(message, BaseMessage):
                return printable(message.text)[:80]
    return ""


def _json_or_empty(content: Any) -> dict[str, Any]:
    try:
        value = json.loads(content) if isinstance(content, str) else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
