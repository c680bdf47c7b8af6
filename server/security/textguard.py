r"""Refuse JSON bodies whose strings hold unpaired UTF-16 surrogates, before any route runs.

`"\ud800"` is valid JSON but not valid Unicode: SQLite and the response encoder would fail on
it halfway through a request. Refusing it at the door keeps that a clean 422.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_CHECKED_BYTES = 1_000_000


def has_lone_surrogate(value: Any) -> bool:
    """Return whether any string in a decoded JSON value contains a surrogate code point."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v) for v in value)
    return False


class RejectLoneSurrogates:
    """ASGI middleware: 422 for JSON request bodies that are not valid Unicode."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer a JSON body, check it, and replay it to the app unchanged."""
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        # Joined once: `body += chunk` per message took time quadratic in the body size.
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        if b"\\u" in body and len(body) <= MAX_CHECKED_BYTES and _bad(body):
            payload = json.dumps(
                {"detail": "body: strings must be valid Unicode (unpaired surrogate found)."}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 422,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _bad(body: bytes) -> bool:
    try:
        return has_lone_surrogate(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return False  # not JSON: the route's own validation answers
