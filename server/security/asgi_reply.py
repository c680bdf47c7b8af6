"""A `{"detail": sentence}` answer sent straight from ASGI middleware, before any route."""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import Send


async def refuse(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `{"detail": detail}` with `status` (and any extra `headers`)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
