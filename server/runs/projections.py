"""Projections: how one protocol sees a run — LangGraph's stream parts turned into its events.

The engine drives every run the same way and hands each stream part to the run's projection;
what a client reads (the chat vocabulary of `/chat/stream`, the CLI and MCP, or the Agent
Server protocol's stream modes) is decided here, by the protocol the run was created through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessageChunk,
    ToolMessage,
    message_chunk_to_message,
)
from langgraph.types import Overwrite

from server.runs.runner import (
    RunOutcome,
    TurnError,
    TurnResult,
    tool_call_records,
    tool_result,
    turn_messages,
)
from server.runs.runner import message_text as _text
from server.runs.store import RunRecord
from server.runs.thread_projection import ThreadProjection

Event = tuple[str, Any]
SUPPORTED_MODES = (
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "events",
    "debug",
    "tasks",
    "checkpoints",
)


class Projection(Protocol):
    """One protocol's view of a run."""

    # The LangGraph stream modes the run is driven with.
    modes: tuple[str, ...]

    def start(self) -> list[Event]:
        """Events sent before the graph runs."""
        ...

    def events(self, mode: str, payload: Any) -> list[Event]:
        """Events for one (mode, payload) stream part."""
        ...

    def finish(self, outcome: RunOutcome, latency_ms: float) -> list[Event]:
        """Events that close a run the graph finished (or paused)."""
        ...

    def stopped(self, answer: str, values: dict[str, Any], latency_ms: float) -> list[Event]:
        """Events that close a run stopped by the turn timeout, with the answer it got."""
        ...


class ChatProjection:
    """The chat vocabulary: metadata, token, tool_call, tool_result, interrupt, done."""

    modes: tuple[str, ...] = ("messages", "updates", "values")

    def __init__(self, run: RunRecord) -> None:
        self._run = run
        self._streamed: set[str] = set()
        # A reply that opens like a tool call written out as text is held back: the model
        # call's update then carries it with the call lifted out (models/toolcalls.py), so
        # the user never sees the JSON or a leftover "{ }".
        self._held: dict[str, str] = {}

    def start(self) -> list[Event]:
        """The run's identity first, so a client can rejoin it."""
        run = self._run
        return [
            ("metadata", {"thread_id": run.thread_id, "run_id": run.run_id, "attempt": run.attempt})
        ]

    def events(self, mode: str, payload: Any) -> list[Event]:
        """Tokens as the model writes them; calls, results and pauses from node updates."""
        if mode == "messages":
            chunk, meta = payload
            if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "model_call":
                text = _text(chunk)
                key = chunk.id or ""
                if text and key not in self._streamed:
                    text = self._held.pop(key, "") + text
                    if text.lstrip()[:1] in ("", "{", "[", "`", "<"):
                        self._held[key] = text
                        return []
                if text:
                    self._streamed.add(key)
                    return [("token", {"text": text})]
            return []
        if mode != "updates" or not isinstance(payload, dict):
            return []
        events: list[Event] = []
        for node, update in payload.items():
            if node == "__interrupt__":
                events += [("interrupt", {"value": i.value, "id": i.id}) for i in update]
            elif isinstance(update, dict):
                events += self._message_events(update.get("messages") or [])
        return events

    def _message_events(self, messages: Any) -> list[Event]:
        if isinstance(messages, Overwrite):
            messages = messages.value[-1:]
        events: list[Event] = []
        for message in messages:
            if isinstance(message, AIMessage):
                for call in message.tool_calls:
                    events.append(
                        (
                            "tool_call",
                            {"id": call["id"], "tool": call["name"], "arguments": call["args"]},
                        )
                    )
                text = _text(message)
                if text and (message.id or "") not in self._streamed:
                    events.append(("token", {"text": text}))
            elif isinstance(message, ToolMessage):
                result = tool_result(message)
                events.append(
                    (
                        "tool_result",
                        {"id": message.tool_call_id, "tool": message.name, "result": result},
                    )
                )
        return events

    def finish(self, outcome: RunOutcome, latency_ms: float) -> list[Event]:
        """`done` with the answer delivered, the tools used and the question waiting, if any."""
        messages = turn_messages(outcome.values.get("messages", []))
        final = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        interrupt = outcome.interrupt
        if interrupt:
            message = str(interrupt.get("question", ""))
        else:
            message = _text(final) if final else ""
        result = TurnResult(
            thread_id=self._run.thread_id,
            run_id=self._run.run_id,
            message=message,
            tool_calls=tool_call_records(messages),
            model_used=str(outcome.values.get("model_used", "")),
            fallback_used=bool(outcome.values.get("fallback_used", False)),
            latency_ms=round(latency_ms, 1),
            interrupt=interrupt,
            failures=list(outcome.values.get("failures", [])),
            fallback_reasons=list(outcome.values.get("fallback_reasons", [])),
            usage=dict(outcome.values.get("usage") or {}),
        )
        return [("done", result.__dict__)]

    def stopped(self, answer: str, values: dict[str, Any], latency_ms: float) -> list[Event]:
        """The stop sentence as the answer."""
        done = TurnResult(
            thread_id=self._run.thread_id,
            run_id=self._run.run_id,
            message=answer,
            tool_calls=[],
            model_used="timeout",
            fallback_used=False,
            latency_ms=round(latency_ms, 1),
        )
        return [("token", {"text": answer}), ("done", done.__dict__)]


class AgentProjection:
    """The Agent Server protocol: the stream modes the client asked for, LangGraph's shapes."""

    def __init__(self, run: RunRecord) -> None:
        self._run = run
        self.requested = stream_modes(run.payload.get("stream_mode"))
        self.modes = tuple(
            dict.fromkeys("messages" if m == "messages-tuple" else m for m in self.requested)
        )
        # `messages` (not `-tuple`): each message so far, as langgraph-api accumulates it.
        self._messages: dict[str, Any] = {}
        # Whether the graph's own values stream already showed the interrupt.
        self._interrupt_shown = False

    def start(self) -> list[Event]:
        """`metadata` with the run id, as the SDK expects first."""
        return [("metadata", {"run_id": self._run.run_id, "attempt": self._run.attempt})]

    def events(self, mode: str, payload: Any) -> list[Event]:
        """The part in LangGraph's shape; a subgraph's modes are named `mode|namespace`."""
        base, bar, namespace = mode.partition("|")
        if base not in self.modes:
            return []
        if mode == "values":
            self._interrupt_shown = isinstance(payload, dict) and "__interrupt__" in payload
        if base == "messages":
            chunk, meta = payload
            events: list[Event] = []
            if "messages-tuple" in self.requested:
                events.append((mode, [chunk, _public_metadata(meta)]))
            if "messages" in self.requested:
                events += self._accumulated(chunk, meta, bar + namespace)
            return events
        if base == "debug" and isinstance(payload, dict) and payload.get("type") == "checkpoint":
            return [(mode, {**payload, "payload": debug_checkpoint(payload["payload"])})]
        return [(mode, payload)]

    def _accumulated(self, chunk: Any, meta: dict[str, Any], suffix: str) -> list[Event]:
        key = chunk.id or ""
        events: list[Event] = []
        if key not in self._messages:
            events.append(
                (f"messages/metadata{suffix}", {key: {"metadata": _public_metadata(meta)}})
            )
        if isinstance(chunk, BaseMessageChunk):
            known = self._messages.get(key)
            self._messages[key] = chunk if known is None else known + chunk
            # Sent as the message so far (type "ai", not a chunk), as langgraph dev sends it.
            whole = message_chunk_to_message(self._messages[key])
            return [*events, (f"messages/partial{suffix}", [whole])]
        self._messages[key] = chunk
        return [*events, (f"messages/complete{suffix}", [chunk])]

    def finish(self, outcome: RunOutcome, latency_ms: float) -> list[Event]:
        """A paused run's state with its interrupts, unless LangGraph's values mode showed them."""
        if "values" in self.requested and outcome.interrupts and not self._interrupt_shown:
            return [("values", {**outcome.values, "__interrupt__": outcome.interrupts})]
        return []

    def stopped(self, answer: str, values: dict[str, Any], latency_ms: float) -> list[Event]:
        """The thread's values, which end with the stop sentence."""
        return [("values", values)]


PROJECTIONS: dict[str, Callable[[RunRecord], Projection]] = {
    "chat": ChatProjection,
    "agent": AgentProjection,
    "thread": ThreadProjection,
}


def projection_for(run: RunRecord) -> Projection:
    """The projection of the protocol `run` was created through."""
    return PROJECTIONS[run.kind](run)


def stream_modes(requested: Any) -> tuple[str, ...]:
    """Normalise the client's stream_mode into a tuple, refusing modes we do not serve."""
    modes = [requested] if isinstance(requested, str) else list(requested or ["values"])
    unknown = [m for m in modes if m not in SUPPORTED_MODES]
    if unknown:
        raise TurnError(
            422,
            f"Unsupported stream_mode {unknown}; supported: {', '.join(SUPPORTED_MODES)}.",
        )
    return tuple(dict.fromkeys(modes))


def checkpoint_of(config: Any) -> dict[str, Any] | None:
    """A checkpoint's address from its config, as the Agent Server writes it."""
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    address = {
        "thread_id": configurable["thread_id"],
        "checkpoint_id": configurable["checkpoint_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns") or "",
    }
    if "checkpoint_map" in configurable:
        address["checkpoint_map"] = configurable["checkpoint_map"]
    return address


def debug_checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """A debug checkpoint event with `checkpoint` and `parent_checkpoint`, as Studio reads it."""
    tasks = []
    for task in payload.get("tasks") or []:
        state = task.get("state")
        if isinstance(state, dict) and state.get("configurable"):
            task = {k: v for k, v in task.items() if k != "state"}
            task["checkpoint"] = state["configurable"]
        tasks.append(task)
    return {
        **payload,
        "checkpoint": checkpoint_of(payload.get("config")),
        "parent_checkpoint": checkpoint_of(payload.get("parent_config")),
        "tasks": tasks,
    }


def _public_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    keep = ("langgraph_node", "langgraph_step", "langgraph_triggers", "langgraph_path", "run_id")
    return {k: v for k, v in meta.items() if k in keep or k.startswith("ls_")}
