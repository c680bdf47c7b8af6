"""Running turns: the one place that opens the saver, compiles the graph and drives a thread."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    messages_from_dict,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from graph.checkpointer import close_saver, open_saver
from graph.context import Context
from graph.services import Services, open_services
from graph.settings import Settings, get_settings
from server.observability.tracing import Tracer, finish
from server.runs.approval_words import answer_of, waiting_sentence
from server.runs.client_input import RefusedInput, fresh_ids, user_messages
from server.runs.graphs import TASK_AGENT, GraphRegistry, ServedGraph, load_graphs
from server.runs.retention import prune_before
from server.runs.state_updates import holds_approved_calls
from server.runs.thread_titles import summarise
from server.runs.threads import ThreadIndex, ThreadInfo, ThreadStatus
from server.runs.user_store import UserStore, open_user_store
from tools.approval import UnusableDecision, from_decisions
from tools.audit import summarize
from tools.text import printable

# The checkpoint address and identity are set by the server, never by a client's config.
_SERVER_KEYS = frozenset(
    {"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "user_id", "run_id"}
)
MAX_RECURSION_LIMIT = 1000

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
    # "label — plain reason" per failed tier, for people (the browser's fallback badge).
    fallback_reasons: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunOptions:
    """How a protocol run drives its graph, beyond its input (the Agent Server's run fields)."""

    graph_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    # Branch from (or re-run) this checkpoint instead of the thread's latest.
    checkpoint_id: str | None = None
    interrupt_before: Any = None
    interrupt_after: Any = None
    subgraphs: bool = False

    @classmethod
    def of(cls, payload: dict[str, Any]) -> RunOptions:
        """The options a run's stored payload carries."""
        checkpoint = payload.get("checkpoint") or {}
        return cls(
            graph_id=payload.get("graph_id"),
            config=dict(payload.get("config") or {}),
            context=dict(payload.get("context") or {}),
            checkpoint_id=payload.get("checkpoint_id") or checkpoint.get("checkpoint_id"),
            interrupt_before=payload.get("interrupt_before"),
            interrupt_after=payload.get("interrupt_after"),
            subgraphs=bool(payload.get("stream_subgraphs")),
        )


@dataclass
class PreparedRun:
    """A request checked against its thread and turned into graph input."""

    thread_id: str
    info: ThreadInfo | None
    graph_input: Any
    title: str
    # With no input: continue the thread's cut-off run from its last checkpoint.
    continue_run: bool = False
    served: ServedGraph | None = None
    options: RunOptions = field(default_factory=RunOptions)


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

    store: UserStore  # the LangGraph store every graph is compiled with (set by `open`)

    def __init__(
        self,
        graphs: GraphRegistry,
        saver: BaseCheckpointSaver[str],
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
            database_url=settings.postgres_url,
        )
        store = await open_user_store(settings, threads)
        graphs = await load_graphs(settings, services, saver, store)
        runner = cls(graphs, saver, services, threads)
        runner.store = store
        return runner

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
        await self.store.close()
        await self.threads.close()
        await close_saver(self.saver)
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
        command: dict[str, Any] | None = None,
        strict_pending: bool = True,
        options: RunOptions | None = None,
        continue_thread: bool = False,
    ) -> PreparedRun:
        """Check a request against the thread's state and turn it into graph input.

        `message` is a user turn, `resume` answers the pending approval (strict: refused when
        nothing waits), `graph_input` is raw graph input from the Agent Server protocol; with
        none of them a run cut off by a crash is finished (`continue_thread`: the thread goes on
        from its latest checkpoint, as a protocol run with null input does after
        `update_state`). Raises TurnError with the status
        to answer with. A thread whose run was cut off is never settled here: the run engine
        takes that run over (its lease expired) before any later run of the thread starts.
        """
        options = options or RunOptions()
        info: ThreadInfo | None = None
        if thread_id is None:
            if message is None and graph_input is None:
                raise TurnError(422, "Send a message (or a thread_id with resume).")
            thread_id = str(uuid.uuid4())
        else:
            info = await self.check_access(thread_id, context.user_id)
        served = self._served_for(info, options.graph_id)
        if continue_thread and info is not None and options.checkpoint_id is None:
            if (await self.state(thread_id)).created_at is None:
                raise TurnError(422, f"Thread {thread_id} has no state to go on from.")
        if options.checkpoint_id is not None:
            past = await self.state(thread_id, options.checkpoint_id)
            if past.created_at is None:
                raise TurnError(
                    404, f"Checkpoint {options.checkpoint_id} not found (it may be pruned)."
                )
            if served.task_agent and holds_approved_calls(past):
                # Approved in another timeline: a new branch must ask again.
                raise TurnError(
                    409,
                    f"Checkpoint {options.checkpoint_id} has approved tool calls waiting to run;"
                    " branch from the checkpoint before the approval.",
                )
        if not served.task_agent:
            raw = _graph_input(info, thread_id, graph_input, command, options)
            return PreparedRun(
                thread_id,
                info,
                raw,
                title_of(raw),
                continue_run=raw is None,
                served=served,
                options=options,
            )
        title = message or ""
        if message is not None and strict_pending and info and info.status == "interrupted":
            # A chat message while an approval waits is its answer, in plain words.
            approved = answer_of(message)
            if approved is None:
                raise TurnError(409, waiting_sentence(info.interrupt))
            resume, message = {"approved": approved}, None
        if resume is not None:
            if info is None or info.status != "interrupted":
                raise TurnError(
                    409, f"Thread {thread_id} is not waiting for an answer; nothing to resume."
                )
            run_input: Any = Command(resume=await self._bound_answer(thread_id, resume))
        elif message is not None or graph_input is not None:
            if strict_pending and info is not None and info.status == "interrupted":
                raise TurnError(409, waiting_sentence(info.interrupt))
            if message is not None:
                run_input = {"messages": [HumanMessage(content=message, id=str(uuid.uuid4()))]}
            else:
                # Only user messages, each checked, ever enter the graph from a client.
                try:
                    sent = user_messages(graph_input, self.services.settings)
                    run_input = {"messages": await self._fresh(thread_id, info, sent, options)}
                except RefusedInput as exc:
                    raise TurnError(422, str(exc)) from None
                title = title_of(run_input)
        else:
            # Continue the thread, or re-run it from a past checkpoint (a client's regenerate).
            run_input = None
        return PreparedRun(
            thread_id=thread_id,
            info=info,
            graph_input=run_input,
            title=title,
            served=served,
            options=options,
            continue_run=options.checkpoint_id is not None
            or (continue_thread and run_input is None and info is not None),
        )

    async def _fresh(
        self,
        thread_id: str,
        info: ThreadInfo | None,
        sent: list[HumanMessage],
        options: RunOptions,
    ) -> list[HumanMessage]:
        """`sent` with client ids kept unless a message of the thread (there) already has one."""
        if info is None:
            return sent
        state = await self.state(thread_id, options.checkpoint_id)
        taken = {str(m.id) for m in state.values.get("messages", []) if m.id}
        return fresh_ids(sent, taken)

    def _served_for(self, info: ThreadInfo | None, graph_id: str | None) -> ServedGraph:
        served = self.graph_of(info)
        if graph_id is None or graph_id == served.graph_id:
            return served
        if info is not None and info.metadata.get("graph_id"):
            raise TurnError(
                409,
                f"Thread {info.thread_id} runs graph {served.graph_id!r}, not {graph_id!r};"
                " start a new thread for that assistant.",
            )
        found = self.graphs.find(graph_id)
        if found is None:
            raise TurnError(404, f"Graph {graph_id!r} is not served here.")
        return found

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
        served = prepared.served or self.graph_of(prepared.info)
        options = prepared.options
        await self.threads.start_run(thread_id, context.user_id, prepared.title)
        config = _run_config(served, thread_id, run_id, options)
        try:
            if prepared.graph_input is not None or prepared.continue_run:
                async with self.tracer.turn(
                    thread_id=thread_id,
                    run_id=run_id,
                    context=context,
                    inputs=_trace_inputs(prepared),
                ) as root:
                    parts = _stream_parts(
                        served.graph,
                        prepared.graph_input,
                        config,
                        context if served.task_agent else options.context or None,
                        modes,
                        options,
                    )
                    async for namespace, mode, payload in parts:
                        if namespace:
                            if mode in modes:
                                yield f"{mode}|{'|'.join(namespace)}", payload
                            continue
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
                outcome.values = (await served.graph.aget_state(config)).values
        except asyncio.CancelledError:
            await self.threads.finish_run(thread_id, "idle")
            raise
        except BaseException:
            await self.threads.finish_run(thread_id, "error")
            raise
        status: ThreadStatus = "interrupted" if outcome.interrupt else "idle"
        await self.threads.finish_run(thread_id, status, outcome.interrupt)
        await self._summarise_title(thread_id, outcome.values)
        if served.task_agent:
            floor = str(outcome.values.get("history_floor", ""))
            await self._prune(thread_id, prepared.info, floor)

    async def _summarise_title(self, thread_id: str, values: Any) -> None:
        """Title the thread from its first turn, once, unless the user titled it."""
        info = await self.threads.get(thread_id)
        if info is None or info.title_source != "first" or not isinstance(values, dict):
            return
        messages = [m for m in values.get("messages") or () if isinstance(m, BaseMessage)]
        title = summarise(messages)
        if title:
            await self.threads.set_title(thread_id, title, "summary")

    async def reached_graph(self, thread_id: str, run_id: str, payload: dict[str, Any]) -> bool:
        """Whether a run's input got into the thread before its previous process died.

        If not, continuing "from the last checkpoint" would finish the thread's previous turn
        and silently drop this one: such a run starts over from its request instead. A new
        message is in once a checkpoint carries the run's id; an approval is in once it is
        recorded against the interrupt, which then no longer waits (no checkpoint yet).
        """
        config: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        # Through the thread's graph: its saver knows the state's classes (the msgpack
        # allow-list `compile` derives), so reading a checkpoint blocks none of them.
        compiled = self.graph_of(await self.threads.get(thread_id)).graph.checkpointer
        saver = compiled if isinstance(compiled, BaseCheckpointSaver) else self.saver
        async for _ in saver.alist(config, filter={"run_id": run_id}, limit=1):
            return True
        command = payload.get("command") or {}
        if payload.get("resume") is None and command.get("resume") is None:
            return False
        state = await self.state(thread_id)
        return not state.interrupts

    async def state(self, thread_id: str, checkpoint_id: str | None = None) -> StateSnapshot:
        """The thread's state (at a checkpoint, if given) through the graph it runs on."""
        served = self.graph_of(await self.threads.get(thread_id))
        configurable = {"thread_id": thread_id}
        if checkpoint_id is not None:
            configurable |= {"checkpoint_ns": "", "checkpoint_id": checkpoint_id}
        return await served.graph.aget_state({"configurable": configurable})

    async def stop_for_time(self, thread_id: str, limit_s: float) -> str:
        """End a turn that ran out of time with an answer saying what it did and why it stopped."""
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        if not self.graph_of(await self.threads.get(thread_id)).task_agent:
            await self.threads.finish_run(thread_id, "idle")
            return f"The run stopped because it took longer than {limit_s:g} s."
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
        return dict((await self.state(thread_id)).values)

    async def settle(self, thread_id: str) -> None:
        """Record the thread idle, or interrupted with the question it waits on."""
        state = await self.state(thread_id)
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


def _run_config(
    served: ServedGraph, thread_id: str, run_id: str, options: RunOptions
) -> RunnableConfig:
    """The run's config: the assistant's and the client's, under the server's own keys."""
    client = options.config
    configurable = {
        key: value
        for key, value in (client.get("configurable") or {}).items()
        # LangGraph's internal keys and the checkpoint address are the server's to set.
        if not str(key).startswith("__") and key not in _SERVER_KEYS
    }
    configurable["thread_id"] = thread_id
    if options.checkpoint_id:
        configurable["checkpoint_id"] = options.checkpoint_id
        configurable["checkpoint_ns"] = ""
    config: RunnableConfig = {
        "configurable": configurable,
        "run_id": uuid.UUID(run_id),
        "metadata": {
            **{k: v for k, v in (client.get("metadata") or {}).items() if k != "run_id"},
            "run_id": run_id,
            "graph_id": served.graph_id,
            "assistant_id": served.assistant_id,
        },
    }
    if isinstance(client.get("tags"), list):
        config["tags"] = [str(tag) for tag in client["tags"]][:20]
    limit = client.get("recursion_limit")
    if isinstance(limit, int) and 1 <= limit <= MAX_RECURSION_LIMIT:
        config["recursion_limit"] = limit
    return config


async def _stream_parts(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    graph_input: Any,
    config: RunnableConfig,
    context: Any,
    modes: tuple[str, ...],
    options: RunOptions,
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """Stream the graph as (namespace, mode, payload); `events` mode rides on astream_events."""
    wanted = [m for m in dict.fromkeys((*modes, "updates", "values")) if m != "events"]
    kwargs: dict[str, Any] = {
        "context": context,
        "stream_mode": wanted,
        "durability": "sync",
        "subgraphs": options.subgraphs,
        "interrupt_before": options.interrupt_before,
        "interrupt_after": options.interrupt_after,
    }
    if "events" not in modes:
        async for part in graph.astream(graph_input, config, **kwargs):
            yield _with_namespace(part)
        return
    root = str(config.get("run_id"))
    async for event in graph.astream_events(graph_input, config, version="v2", **kwargs):
        chunk = event["data"].get("chunk") if event["event"] == "on_chain_stream" else None
        if event["run_id"] == root and isinstance(chunk, tuple):
            yield _with_namespace(chunk)
        else:
            yield (), "events", event


def _with_namespace(part: Any) -> tuple[tuple[str, ...], str, Any]:
    if len(part) == 3:
        return tuple(part[0]), part[1], part[2]
    return (), part[0], part[1]


def _graph_input(
    info: ThreadInfo | None,
    thread_id: str,
    graph_input: Any,
    command: dict[str, Any] | None,
    options: RunOptions,
) -> Any:
    """A developer's graph gets the client's input and command as they are."""
    if command:
        if command.get("resume") is not None and (info is None or info.status != "interrupted"):
            raise TurnError(
                409, f"Thread {thread_id} is not waiting for an answer; nothing to resume."
            )
        return Command(
            resume=command.get("resume"),
            update=command.get("update"),
            goto=command.get("goto") or (),
        )
    if graph_input is None and options.checkpoint_id is None and info is None:
        raise TurnError(422, "A run needs input or command (e.g. command={'resume': ...}).")
    return graph_input


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
