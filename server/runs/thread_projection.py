"""The thread-centric protocol's view of a run: LangGraph stream parts as protocol events.

Runs created through `POST /threads/{id}/commands` are logged in the wire vocabulary of the
thread-centric protocol (`@langchain/protocol`): each logged event is one protocol event, its
name the protocol `method` (`lifecycle`, `messages`, `tools`, `values`, `updates`,
`checkpoints`, `tasks`, `custom`, `input.requested`) and its data the event's `params`
(`namespace`, `timestamp`, `data`, optionally `node`). The thread's event stream
(server/runs/thread_stream.py) only adds the envelope: `seq`, `event_id`, `type`.

Messages follow LangChain's content-block lifecycle (`message-start`, `content-block-start`,
`content-block-delta`, `content-block-finish`, `message-finish`): text is streamed as the
model writes it; a message's final blocks (its tool calls included) come with the node's
update, through langchain-core's own `message_to_events`. Every event is at the root
namespace: runs are driven without subgraph streaming.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.language_models._compat_bridge import message_to_events
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langgraph.types import Interrupt, Overwrite
from pydantic_core import to_jsonable_python

from server.runs.runner import RunOutcome
from server.runs.store import RunRecord

Event = tuple[str, Any]
# Text that opens like a tool call written out (JSON, a fence, a tag) is not streamed: the
# node's update carries the message with the call lifted out (models/toolcalls.py).
_HELD_OPENINGS = ("", "{", "[", "`", "<")
_EMPTY_TEXT = {"type": "text", "text": ""}


def _params(data: Any, *, node: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "namespace": [],
        "timestamp": int(time.time() * 1000),
        "data": to_jsonable_python(data, fallback=str),
    }
    if node is not None:
        params["node"] = node
    return params


class ThreadProjection:
    """The thread-centric protocol: lifecycle, messages, tools, values, updates, input, ..."""

    modes: tuple[str, ...] = ("messages", "updates", "values", "custom", "tasks", "checkpoints")

    def __init__(self, run: RunRecord) -> None:
        self._run = run
        self._graph = str(run.payload.get("graph_id") or run.assistant_id)
        # Messages whose text is being streamed (message-start sent), and text held back.
        self._open: set[str] = set()
        self._held: dict[str, str] = {}
        self._calls: dict[str, dict[str, Any]] = {}
        self._asked: set[str] = set()

    def start(self) -> list[Event]:
        """The root namespace is running."""
        return [("lifecycle", _params({"event": "running", "graph_name": self._graph}))]

    def events(self, mode: str, payload: Any) -> list[Event]:
        """Protocol events for one LangGraph stream part."""
        if mode == "messages":
            return self._chunk(*payload)
        if mode == "updates" and isinstance(payload, dict):
            return self._updates(payload)
        if mode == "values" and isinstance(payload, dict):
            values = {k: v for k, v in payload.items() if k != "__interrupt__"}
            return [("values", _params(values))]
        if mode == "custom":
            return [("custom", _params({"payload": payload}))]
        if mode == "tasks":
            return [("tasks", _params(payload))]
        if mode == "checkpoints" and isinstance(payload, dict):
            return [("checkpoints", _params(_checkpoint(payload)))]
        return []

    def _chunk(self, chunk: Any, meta: dict[str, Any]) -> list[Event]:
        if not isinstance(chunk, AIMessageChunk) or not chunk.id:
            return []
        text = str(chunk.text)
        if not text:
            return []
        key = chunk.id
        # Clients assemble a message from the events of one (namespace, node): every event
        # of a message names the node that wrote it.
        node = meta.get("langgraph_node")
        node = node if isinstance(node, str) else None
        events: list[Event] = []
        if key not in self._open:
            text = self._held.pop(key, "") + text
            if text.lstrip()[:1] in _HELD_OPENINGS:
                self._held[key] = text
                return []
            self._open.add(key)
            start = {"event": "content-block-start", "index": 0, "content": _EMPTY_TEXT}
            events += [
                ("messages", _params(_message_start(key), node=node)),
                ("messages", _params(start, node=node)),
            ]
        delta = {"event": "content-block-delta", "index": 0, "delta": _text_delta(text)}
        events.append(("messages", _params(delta, node=node)))
        return events

    def _updates(self, payload: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        for node, update in payload.items():
            if node == "__interrupt__":
                events += self._interrupts(update)
                continue
            if isinstance(update, dict):
                messages = update.get("messages") or []
                if isinstance(messages, Overwrite):
                    messages = messages.value[-1:]
                for message in messages if isinstance(messages, list) else []:
                    events += self._message(message, node)
            events.append(("updates", _params(update, node=node)))
        return events

    def _message(self, message: Any, node: str) -> list[Event]:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                self._calls[call["id"] or ""] = dict(call)
            return self._finished_message(message, node)
        if isinstance(message, ToolMessage):
            return self._tool(message)
        return []

    def _finished_message(self, message: AIMessage, node: str | None) -> list[Event]:
        key = message.id or ""
        self._held.pop(key, None)
        events = list(message_to_events(message))
        if key in self._open:
            # Its text was streamed: only what the stream has not said yet.
            self._open.discard(key)
            events = [
                e
                for e in events
                if e["event"] not in ("message-start", "content-block-delta")
                and not (e["event"] == "content-block-start" and e.get("index") == 0)
            ]
        return [("messages", _params(e, node=node)) for e in events]

    def _tool(self, message: ToolMessage) -> list[Event]:
        call_id = message.tool_call_id
        call = self._calls.get(call_id, {})
        started = {
            "event": "tool-started",
            "tool_call_id": call_id,
            "tool_name": message.name or call.get("name", ""),
            "input": call.get("args", {}),
        }
        if message.status == "error":
            ended: dict[str, Any] = {
                "event": "tool-error",
                "tool_call_id": call_id,
                "message": message.text,
            }
        else:
            ended = {"event": "tool-finished", "tool_call_id": call_id, "output": message}
        return [("tools", _params(started)), ("tools", _params(ended))]

    def _interrupts(self, interrupts: Any) -> list[Event]:
        events: list[Event] = []
        for item in interrupts or ():
            if not isinstance(item, Interrupt) or item.id in self._asked:
                continue
            self._asked.add(item.id)
            events.append(
                ("input.requested", _params({"interrupt_id": item.id, "payload": item.value}))
            )
        return events

    def finish(self, outcome: RunOutcome, latency_ms: float) -> list[Event]:
        """Questions not yet asked, then the root's end: interrupted or completed."""
        events = self._interrupts(outcome.interrupts)
        status = "interrupted" if outcome.interrupts else "completed"
        return [*events, ("lifecycle", _params({"event": status, "graph_name": self._graph}))]

    def stopped(self, answer: str, values: dict[str, Any], latency_ms: float) -> list[Event]:
        """The thread's values, which end with the stop sentence, and the run's end."""
        stop = AIMessage(content=answer)
        return [
            *[("messages", _params(e, node="model_call")) for e in message_to_events(stop)],
            ("values", _params(values)),
            ("lifecycle", _params({"event": "completed", "graph_name": self._graph})),
        ]


def _message_start(message_id: str) -> dict[str, Any]:
    return {"event": "message-start", "role": "ai", "id": message_id}


def _text_delta(text: str) -> dict[str, Any]:
    return {"type": "text-delta", "text": text}


def _checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """A `checkpoints` stream part as the protocol's Checkpoint: id, parent_id, step, source."""
    config = payload.get("config") or {}
    parent = payload.get("parent_config") or {}
    metadata = payload.get("metadata") or {}
    checkpoint: dict[str, Any] = {
        "id": config.get("configurable", {}).get("checkpoint_id"),
        "step": metadata.get("step", -1),
        "source": metadata.get("source", "loop"),
    }
    parent_id = parent.get("configurable", {}).get("checkpoint_id")
    if parent_id:
        checkpoint["parent_id"] = parent_id
    return checkpoint
