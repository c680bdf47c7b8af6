"""Size limits: request bodies and headers at the door, JSON metadata per field.

The door runs before any route, so before the API key is checked: an oversized request
costs the server at most `max_body_bytes` of reading, whoever sends it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Header, HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.settings import Settings
from server.security.asgi_reply import refuse

# The unread rest of an oversized request makes the connection unusable.
_CLOSE = [(b"connection", b"close")]


class RequestSizeLimit:
    """ASGI middleware: 431 for oversized headers, 413 for bodies over the limit.

    A declared `Content-Length` over the limit is refused before a byte of the body is read
    (the HTTP parser holds a body to its declared length). A body without one (chunked) is
    read here up to the limit, then handed on; one byte more and the rest is never read.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an oversized request, or pass it on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        header_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        header_bytes += sum(len(name) + len(value) + 4 for name, value in headers)
        if header_bytes > self.max_header_bytes:
            await refuse(
                send,
                431,
                f"Request headers are {header_bytes} bytes; the limit is {self.max_header_bytes}.",
                _CLOSE,
            )
            return
        declared = [value for name, value in headers if name == b"content-length"]
        if declared:
            length = int(declared[0]) if declared[0].strip().isdigit() else 0
            if length > self.max_body_bytes:
                await refuse(
                    send,
                    413,
                    f"Request body is {length} bytes; the limit is {self.max_body_bytes} bytes.",
                    _CLOSE,
                )
                return
            await self.app(scope, receive, send)
            return
        if not any(name == b"transfer-encoding" for name, _ in headers):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                await refuse(
                    send,
                    413,
                    f"Request body is over the limit of {self.max_body_bytes} bytes.",
                    _CLOSE,
                )
                return
            if not message.get("more_body"):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def json_depth(value: Any) -> int:
    """Return how deeply objects and arrays nest in a decoded JSON value (a scalar is 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Any = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def check_json_size(value: Any, what: str, settings: Settings) -> None:
    """Raise ValueError when `value` nests or weighs more than `settings` allow."""
    depth = json_depth(value)
    if depth > settings.max_metadata_depth:
        raise ValueError(
            f"{what} nests {depth} levels deep; the limit is {settings.max_metadata_depth}."
        )
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
    if size > settings.max_metadata_bytes:
        raise ValueError(
            f"{what} is {size} bytes of JSON; the limit is {settings.max_metadata_bytes}."
        )


def refuse_oversized_json(settings: Settings, **fields: Any) -> None:
    """Answer 422 for the first JSON field (name=value) over the limits; None passes.

    Called by a route before it changes anything, with the settings of the app serving it
    (TASKAGENT_MAX_METADATA_*): a request model cannot know which app validates it.
    """
    for name, value in fields.items():
        if value is None:
            continue
        try:
            check_json_size(value, name, settings)
        except ValueError as exc:
            raise HTTPException(422, f"{name}: {exc}") from None


LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        # 18 digits stay below SQLite's 2**63: a longer id was never sent by any run, and
        # replaying from 0 for it would hand the client events it says it already has.
        max_length=18,
        description="The id of the last event received; the stream resumes after it.",
    ),
]
"""The `Last-Event-ID` header of a rejoin: a run's event sequence number."""

MAX_OFFSET = 1_000_000_000
"""The largest `offset` a list or search accepts (SQLite integers stop at 2**63 - 1)."""
MAX_TTL_MINUTES = 60 * 24 * 366 * 10
"""The longest time-to-live a thread or store item accepts (ten years; more overflows dates)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7396, what SQLite's json_patch does) to `target`."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
