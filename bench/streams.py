"""One streamed turn through the stock SDK, timed: first event, first token, chunks per call."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode

GRAPH_ID = "agent"
STREAM_MODE: list[StreamMode] = ["updates", "messages-tuple"]
MODEL_NODE = "model_call"


@dataclass
class Stream:
    """What one ``runs.stream`` call delivered, with times (s) from just before the POST."""

    first_event: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    done: float | None = None
    tokens: int = 0
    events: dict[str, int] = field(default_factory=dict)
    # Chunks the model streamed per model call (message id), for the pacing-only ideal.
    chunks: dict[str, int] = field(default_factory=dict)
    error: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """Finished without an error and streamed at least one token."""
        return not self.error and self.done is not None and self.tokens > 0


def _ai_chunk(data: Any) -> dict[str, Any] | None:
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], dict)):
        return None
    message: dict[str, Any] = data[0]
    return message if message.get("type") in ("AIMessageChunk", "ai") else None


def shape_problem(event: str, data: Any, index: int) -> str:
    """Why an SSE event does not look like the Agent Server protocol, or '' if it does."""
    if index == 0 and (event != "metadata" or not isinstance(data, dict) or "run_id" not in data):
        return f"first event is {event!r} {str(data)[:200]}, expected metadata with run_id"
    if event == "error":
        return f"error event: {str(data)[:300]}"
    return ""


async def stream_turn(client: LangGraphClient, thread_id: str, text: str, limit_s: float) -> Stream:
    """Stream one turn and time it; failures are recorded, not raised.

    A stream that has not ended after `limit_s` is abandoned (what it delivered is kept).
    """
    result = Stream()
    try:
        await asyncio.wait_for(_consume(client, thread_id, text, result), limit_s)
    except TimeoutError:
        result.timed_out = True
        result.error = f"stream not finished after {limit_s:g} s"
    except Exception as exc:  # noqa: BLE001 - a failed stream is a measurement, not a crash
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    if not result.error and result.tokens == 0:
        result.error = f"no tokens streamed (events: {result.events})"
    return result


async def _consume(client: LangGraphClient, thread_id: str, text: str, result: Stream) -> None:
    payload: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()
    parts = client.runs.stream(thread_id, GRAPH_ID, input=payload, stream_mode=STREAM_MODE)
    index = 0
    async for part in parts:
        now = time.perf_counter() - started
        result.events[part.event] = result.events.get(part.event, 0) + 1
        if result.first_event is None:
            result.first_event = now
        problem = shape_problem(part.event, part.data, index)
        if problem and not result.error:
            result.error = problem
        index += 1
        if part.event != "messages":
            continue
        message = _ai_chunk(part.data)
        if message is None or part.data[1].get("langgraph_node") != MODEL_NODE:
            continue
        key = str(message.get("id"))
        result.chunks[key] = result.chunks.get(key, 0) + 1
        if message.get("content"):
            result.tokens += 1
            result.last_token = now
            if result.first_token is None:
                result.first_token = now
    result.done = time.perf_counter() - started


async def new_thread(client: LangGraphClient) -> str:
    """Create a thread and return its id."""
    thread = await client.threads.create()
    return str(thread["thread_id"])


def client_for(url: str) -> LangGraphClient:
    """A stock SDK client for the server (no API key picked up from the environment)."""
    return get_client(url=url, api_key=None)
