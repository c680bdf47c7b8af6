"""Who the client is: the socket peer, or what a trusted proxy says in X-Forwarded-For.

uvicorn trusts forwarded headers from 127.0.0.1 by default, so any local process could
claim to be any address. `taskagent serve` turns that off and trusts only the proxies
named in `TASKAGENT_FORWARDED_ALLOW_IPS`; the socket peer is kept for the audit either way.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


class RecordPeer:
    """ASGI middleware: keep the socket peer's address as `request.state.peer`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Note the peer before anything rewrites `scope["client"]`."""
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            scope.setdefault("state", {})["peer"] = client[0] if client else ""
        await self.app(scope, receive, send)


def behind_proxies(app: ASGIApp, trusted: str | None) -> ASGIApp:
    """Return `app` with the peer recorded and X-Forwarded-For honoured only from `trusted`."""
    if trusted:
        app = cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted))
    return RecordPeer(app)
