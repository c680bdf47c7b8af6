"""Redacting a run's events before they are logged or sent: streamed text with a held tail.

Chat `token` events and agent-protocol `messages` chunks carry a model's answer a few
characters at a time, so each stream goes through a `StreamRedactor` that holds back a short
tail and releases it when the message ends (its last chunk, or any other event). Every
other event, and everything else in a chunk, is redacted whole.
"""

from __future__ import annotations

from typing import Any

from graph.redaction import Redactor, StreamRedactor

Event = tuple[str, Any]
_CHAT = "chat"


class EventRedactor:
    """Redacts one run's events in order; keep one per run."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._streams: dict[str, StreamRedactor] = {}
        # The last chunk of each open agent-protocol stream, the template of its tail's chunk.
        self._last: dict[str, Event] = {}

    def events(self, event: str, data: Any) -> list[Event]:
        """Return what to publish for one JSON-ready event: held tails first, then the event."""
        if event == "token" and isinstance(data, dict) and isinstance(data.get("text"), str):
            out = self._flush(keep=_CHAT)
            text = self._stream(_CHAT).feed(data["text"])
            if text:
                out.append(("token", {**self._redactor.value(data), "text": text}))
            return out
        chunk_id = _streamed_chunk_id(event, data)
        if chunk_id is not None:
            return [*self._flush(keep=chunk_id), *self._chunk(chunk_id, data)]
        return [*self._flush(), (event, self._redactor.value(data))]

    def flush(self) -> list[Event]:
        """The run ended: return the held tails of every open stream."""
        return self._flush()

    def _stream(self, key: str) -> StreamRedactor:
        if key not in self._streams:
            self._streams[key] = self._redactor.stream()
        return self._streams[key]

    def _chunk(self, chunk_id: str, data: list[Any]) -> list[Event]:
        chunk, meta = data
        stream = self._stream(chunk_id)
        content = chunk.get("content")
        if isinstance(content, str):
            released: Any = stream.feed(content)
        else:
            released = [self._block(stream, block) for block in content]
        last = chunk.get("chunk_position") == "last"
        if last:
            tail = stream.flush()
            if isinstance(released, str):
                released += tail
            elif tail:
                released.append({"type": "text", "text": tail})
            del self._streams[chunk_id]
            self._last.pop(chunk_id, None)
        else:
            self._last[chunk_id] = ("messages", [chunk, meta])
        rest = self._redactor.value({k: v for k, v in chunk.items() if k != "content"})
        if not last and content and not released and not _carries_more(chunk):
            return []  # all of its text is held back; nothing else to say yet
        return [("messages", [{**rest, "content": released}, self._redactor.value(meta)])]

    def _block(self, stream: StreamRedactor, block: Any) -> Any:
        if isinstance(block, dict) and block.get("type") == "text":
            return {**self._redactor.value(block), "text": stream.feed(str(block.get("text")))}
        return self._redactor.value(block)

    def _flush(self, keep: str | None = None) -> list[Event]:
        out: list[Event] = []
        for key in [k for k in self._streams if k != keep]:
            tail = self._streams.pop(key).flush()
            if not tail:
                self._last.pop(key, None)
                continue
            if key == _CHAT:
                out.append(("token", {"text": tail}))
                continue
            _, (chunk, meta) = self._last.pop(key)
            held = {
                **self._redactor.value(chunk),
                "content": tail if isinstance(chunk.get("content"), str) else [_text(tail)],
                "tool_call_chunks": [],
                "tool_calls": [],
                "invalid_tool_calls": [],
                "usage_metadata": None,
                "response_metadata": {},
            }
            out.append(("messages", [held, self._redactor.value(meta)]))
        return out


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def _streamed_chunk_id(event: str, data: Any) -> str | None:
    """The message id of an agent-protocol chunk of a model's streamed answer, else None."""
    if event != "messages" or not isinstance(data, list) or len(data) != 2:
        return None
    chunk = data[0]
    if not isinstance(chunk, dict) or chunk.get("type") != "AIMessageChunk":
        return None
    if not isinstance(chunk.get("content"), str | list):
        return None
    return str(chunk.get("id") or "")


def _carries_more(chunk: dict[str, Any]) -> bool:
    """Whether a chunk says something besides its text (tool calls, usage, a finish reason)."""
    return bool(
        chunk.get("tool_call_chunks")
        or chunk.get("usage_metadata")
        or (chunk.get("response_metadata") or {}).get("finish_reason")
    )
