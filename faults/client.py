"""The HTTP side the faults drive the server with: `/chat/stream` SSE, parsed as it arrives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource


@dataclass(frozen=True)
class Event:
    """One server-sent event: its id (the run's sequence number), name and JSON data."""

    id: int | None
    event: str
    data: Any


async def read_events(response: httpx.Response) -> AsyncIterator[Event]:
    """Yield the SSE events of a streaming response (pings and comments are skipped)."""
    async for sse in EventSource(response).aiter_sse():
        if not sse.data:
            continue
        try:
            payload: Any = sse.json()
        except json.JSONDecodeError:
            payload = sse.data
        yield Event(int(sse.id) if sse.id.isdigit() else None, sse.event, payload)


def chat_body(
    message: str | None = None, thread_id: str | None = None, resume: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON body of a `/chat` or `/chat/stream` request."""
    body: dict[str, Any] = {}
    if message is not None:
        body["message"] = message
    if thread_id is not None:
        body["thread_id"] = thread_id
    if resume is not None:
        body["resume"] = resume
    return body
