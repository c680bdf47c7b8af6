"""Redacting a run's events before they are logged or sent: streamed text with a held tail.

Chat `token` events, agent-protocol `messages` chunks and the thread-centric protocol's text
deltas (`content-block-delta`) carry a model's answer a few characters at a time, and its tool
calls' arguments likewise, so each of these streams goes through a `StreamRedactor` that holds
back a short tail and releases it when the message ends (its last chunk, or any other event).
Every other event, and everything else in a chunk, is redacted whole.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk

from graph.redaction import Redactor, StreamRedactor

Event = tuple[str, Any]
# A stream of text: (message id, None) for a message's text, (message id, i) for the arguments
# of its i-th tool call; the chat vocabulary's tokens are one stream of their own.
StreamKey = tuple[str, int | None]
_CHAT: StreamKey = ("chat", None)


class EventRedactor:
    """Redacts one run's events in order; keep one per run."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._streams: dict[StreamKey, StreamRedactor] = {}
        # The last chunk of each open agent-protocol stream, the template of its tail's chunk.
        self._last: dict[str, Event] = {}
        # The same for the thread-centric protocol's text deltas, one stream per graph node.
        self._thread_last: dict[StreamKey, Any] = {}

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
        thread_key = _thread_text_key(event, data)
        if thread_key is not None:
            out = self._flush(keep=thread_key)
            text = self._stream(thread_key).feed(data["data"]["delta"]["text"])
            self._thread_last[thread_key] = data
            if text:
                out.append((event, _with_delta(self._redactor.value(data), text)))
            return out
        return [*self._flush(), (event, self._redactor.value(data))]

    def flush(self) -> list[Event]:
        """The run ended: return the held tails of every open stream."""
        return self._flush()

    def _stream(self, key: StreamKey) -> StreamRedactor:
        if key not in self._streams:
            self._streams[key] = self._redactor.stream()
        return self._streams[key]

    def _chunk(self, chunk_id: str, data: list[Any]) -> list[Event]:
        chunk, meta = data
        stream = self._stream((chunk_id, None))
        content = chunk.get("content")
        if isinstance(content, str):
            released: Any = stream.feed(content)
        else:
            released = [self._block(stream, block) for block in content]
        calls = [self._call_chunk(chunk_id, call) for call in chunk.get("tool_call_chunks") or []]
        last = chunk.get("chunk_position") == "last"
        if last:
            tail = stream.flush()
            if isinstance(released, str):
                released += tail
            elif tail:
                released.append({"type": "text", "text": tail})
            del self._streams[(chunk_id, None)]
            calls += self._call_tails(chunk_id)
            self._last.pop(chunk_id, None)
        else:
            self._last[chunk_id] = ("messages", [chunk, meta])
        rest = self._redactor.value({k: v for k, v in chunk.items() if k not in _STREAMED})
        if not last and content and not released and not _carries_more(chunk):
            return []  # all of its text is held back; nothing else to say yet
        out = {**rest, "content": released, **_tool_call_fields(calls)}
        return [("messages", [out, self._redactor.value(meta)])]

    def _call_chunk(self, chunk_id: str, call: Any) -> Any:
        """Return a tool-call chunk whose argument text is released through its stream."""
        if not isinstance(call, dict) or not isinstance(call.get("args"), str):
            return self._redactor.value(call)
        index = call.get("index") if isinstance(call.get("index"), int) else 0
        stream = self._stream((chunk_id, index))
        others = self._redactor.value({k: v for k, v in call.items() if k != "args"})
        return {**others, "args": stream.feed(call["args"])}

    def _call_tails(self, chunk_id: str) -> list[dict[str, Any]]:
        """Flush the argument streams of one message: its calls' held tails, as chunks."""
        tails: list[dict[str, Any]] = []
        for key in [k for k in self._streams if k[0] == chunk_id and k[1] is not None]:
            tail = self._streams.pop(key).flush()
            if tail:
                tails.append(
                    {"type": "tool_call_chunk", "index": key[1], "id": None, "name": None}
                    | {"args": tail}
                )
        return tails

    def _block(self, stream: StreamRedactor, block: Any) -> Any:
        if isinstance(block, dict) and block.get("type") == "text":
            return {**self._redactor.value(block), "text": stream.feed(str(block.get("text")))}
        return self._redactor.value(block)

    def _flush(self, keep: StreamKey | str | None = None) -> list[Event]:
        out: list[Event] = []
        if keep != _CHAT and _CHAT in self._streams:
            tail = self._streams.pop(_CHAT).flush()
            if tail:
                out.append(("token", {"text": tail}))
        for key in [k for k in self._thread_last if k != keep and k in self._streams]:
            tail = self._streams.pop(key).flush()
            template = self._thread_last.pop(key)
            if tail:
                out.append(("messages", _with_delta(self._redactor.value(template), tail)))
        for chunk_id in dict.fromkeys(
            k[0] for k in self._streams if k != _CHAT and k not in self._thread_last
        ):
            if chunk_id == keep:
                continue
            text_stream = self._streams.pop((chunk_id, None), None)
            tail = text_stream.flush() if text_stream is not None else ""
            calls = self._call_tails(chunk_id)
            last = self._last.pop(chunk_id, None)
            if (not tail and not calls) or last is None:
                continue
            _, (chunk, meta) = last
            held = {
                **self._redactor.value({k: v for k, v in chunk.items() if k not in _STREAMED}),
                "content": tail if isinstance(chunk.get("content"), str) else [_text(tail)],
                **_tool_call_fields(calls),
                "usage_metadata": None,
                "response_metadata": {},
            }
            out.append(("messages", [held, self._redactor.value(meta)]))
        return out


# A chunk's fields that carry streamed text (or are parsed from it), rebuilt after release.
_STREAMED = ("content", "tool_call_chunks", "tool_calls", "invalid_tool_calls")


def _tool_call_fields(calls: list[Any]) -> dict[str, Any]:
    """A chunk's tool-call fields from its released call chunks, parsed as LangChain does."""
    if not calls:
        return {"tool_call_chunks": [], "tool_calls": [], "invalid_tool_calls": []}
    parsed = AIMessageChunk(content="", tool_call_chunks=calls)
    return {
        "tool_call_chunks": calls,
        "tool_calls": [dict(call) for call in parsed.tool_calls],
        "invalid_tool_calls": [dict(call) for call in parsed.invalid_tool_calls],
    }


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


def _thread_text_key(event: str, data: Any) -> StreamKey | None:
    """The stream of a thread-protocol text delta (`content-block-delta`), else None."""
    if event != "messages" or not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        return None
    body = data["data"]
    delta = body.get("delta")
    if body.get("event") != "content-block-delta" or not isinstance(delta, dict):
        return None
    if delta.get("type") != "text-delta" or not isinstance(delta.get("text"), str):
        return None
    return (f"thread:{data.get('node') or ''}", None)


def _with_delta(params: dict[str, Any], text: str) -> dict[str, Any]:
    """A thread-protocol delta event carrying `text`."""
    body = params["data"]
    return {**params, "data": {**body, "delta": {**body["delta"], "text": text}}}


def _carries_more(chunk: dict[str, Any]) -> bool:
    """Whether a chunk says something besides its text (tool calls, usage, a finish reason)."""
    return bool(
        chunk.get("tool_call_chunks")
        or chunk.get("usage_metadata")
        or (chunk.get("response_metadata") or {}).get("finish_reason")
    )
