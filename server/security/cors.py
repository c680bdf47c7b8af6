"""Which web pages may call the API from a browser (CORS), and the one list that says so.

Studio (https://smith.langchain.com) and chat UIs served from another loopback port call the
server straight from the browser. The origins on TASKAGENT_ALLOWED_ORIGINS get CORS answers
(preflights with any method and header, Private Network Access for Chrome, the headers a
client reads exposed); every other origin gets none, and the browser guard still refuses its
writes. Both read the same `AllowedOrigins`, so what a page may read and what it may change
cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.observability.logs import REQUEST_ID_HEADER

# What a browser client reads from our answers: where a run and its stream are, the
# pagination of searches (the headers langgraph-api exposes), when to retry, the request id.
EXPOSED_HEADERS = (
    "Content-Location",
    "Location",
    "X-Pagination-Total",
    "X-Pagination-Next",
    "Retry-After",
    REQUEST_ID_HEADER,
)
PREFLIGHT_MAX_AGE_S = 600
REFUSED = "This origin may not call the API; add it to TASKAGENT_ALLOWED_ORIGINS if it is yours."
_ANY_PORT = re.compile(r"(?P<base>https?://[^/?#@\s]+):\*")
_PORT = re.compile(r"\d{1,5}")


@dataclass(frozen=True)
class AllowedOrigins:
    """Origins (`scheme://host[:port]`) and origins of any port (`scheme://host:*`)."""

    exact: frozenset[str]
    any_port: frozenset[str]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowedOrigins:
        """Read the entries of TASKAGENT_ALLOWED_ORIGINS (already checked by the settings)."""
        exact: set[str] = set()
        any_port: set[str] = set()
        for entry in entries:
            entry = entry.strip().lower().rstrip("/")
            wildcard = _ANY_PORT.fullmatch(entry)
            if wildcard:
                any_port.add(wildcard["base"])
            elif entry:
                exact.add(entry)
        return cls(frozenset(exact), frozenset(any_port))

    def __contains__(self, origin: object) -> bool:
        """Return whether a request's `Origin` header names an allowed page."""
        if not isinstance(origin, str):
            return False
        origin = origin.strip().lower().rstrip("/")
        if origin in self.exact:
            return True
        base, _, port = origin.rpartition(":")
        # "http://localhost" has no port: its rpartition splits the scheme, not a port.
        if _PORT.fullmatch(port) and 0 < int(port) < 65536 and base in self.any_port:
            return True
        return origin in self.any_port


class BrowserCORS(CORSMiddleware):
    """Starlette's CORS middleware answering only for the allowed origins.

    Preflights from them are answered for any method and header (`x-api-key`,
    `authorization`, `x-auth-scheme`, `idempotency-key`, `last-event-id`, LangSmith's
    tracing headers…) and with `Access-Control-Allow-Private-Network: true` when asked, which
    Chrome requires before a public page (Studio) may reach a loopback server.
    """

    def __init__(self, app: ASGIApp, origins: AllowedOrigins) -> None:
        super().__init__(
            app,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_private_network=True,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_S,
        )
        self.origins = origins

    def is_allowed_origin(self, origin: str) -> bool:
        """Return whether `origin` is on the allow-list (the guard reads the same list)."""
        return origin in self.origins

    def preflight_response(self, request_headers: Headers) -> Response:
        """Answer a preflight; an unlisted origin's gets no CORS header at all."""
        if not self.is_allowed_origin(request_headers["origin"]):
            return PlainTextResponse(REFUSED, status_code=400, headers={"Vary": "Origin"})
        return super().preflight_response(request_headers)

    async def simple_response(
        self, scope: Scope, receive: Receive, send: Send, request_headers: Headers
    ) -> None:
        """Add the CORS headers for an allowed origin; leave other answers as they are."""
        origin = request_headers.get("origin")
        if origin is not None and not self.is_allowed_origin(origin):
            await self.app(scope, receive, send)
            return
        await super().simple_response(scope, receive, send, request_headers)


__all__ = ["EXPOSED_HEADERS", "AllowedOrigins", "BrowserCORS"]
