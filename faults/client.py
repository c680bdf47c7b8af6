"""The HTTP side the faults drive the server with: `/chat/stream` SSE, parsed as it arrives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    """One server-sent event: its id (the run's sequence number), name and JSON data."""

    id: int | None
    event: str
    data: Any


async def read_events(response: httpx.Response) -> AsyncIterator[Event]:
    """Yield the SSE events of a streaming response (pings and comments are skipped)."""
    event, event_id = "message", None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except json.JSONDecodeError:
                    payload = text
                yield Event(event_id, event, payload)
            event, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = int(value) if value.isdigit() else None


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
