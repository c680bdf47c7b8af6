"""The request id over HTTP: chosen (or accepted from the client), bound for logs, echoed back.

Kept apart from `logs` so that code below HTTP (the run engine) can log without importing
the web framework.
"""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph import metrics
from server.observability import logs

# A client's id is echoed into headers and logs: keep it short and free of separators.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")


def request_id_of(request: Request) -> str:
    """Return the id the middleware chose for this request (or a fresh one outside it)."""
    chosen = getattr(request.state, "request_id", None)
    if isinstance(chosen, str):
        return chosen
    return accepted_request_id(request.headers.get("x-request-id"))


def accepted_request_id(header: str | None) -> str:
    """Return the client's `X-Request-ID` when it is a sane token, else a new id."""
    if header and _ACCEPTABLE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestContext:
    """ASGI middleware: choose the request id, bind it for logs, echo it, count the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its id bound; add `X-Request-ID` to the response headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None
        )
        request_id = accepted_request_id(header)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with logs.fresh_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                metrics.HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
