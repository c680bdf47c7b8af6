"""Request bodies are JSON whatever their Content-Type says.

LangGraph Studio and agent-chat-ui's API proxy send JSON as `text/plain` (a "simple" request
needs no CORS preflight), and some clients send no Content-Type at all. FastAPI parses a body
only when it is labelled JSON, so every route here would answer those with 422 although
`langgraph dev` reads them. No route takes a form or a file, so the label is only a hint:
this middleware relabels every body as JSON before the routes see it, and a body that is not
JSON still gets the routes' own 422.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

JSON = b"application/json"


def is_json_type(value: bytes) -> bool:
    """Return whether a Content-Type value already says JSON (`application/json`, `…+json`)."""
    media = value.split(b";", 1)[0].strip().lower()
    return media == JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


class BodiesAreJson:
    """ASGI middleware: label every HTTP request body `application/json`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Replace a missing or non-JSON Content-Type before the app reads the body."""
        if scope["type"] == "http":
            headers = scope["headers"]
            labels = [value for name, value in headers if name.lower() == b"content-type"]
            if len(labels) != 1 or not is_json_type(labels[0]):
                # In place, not a copy: outer middleware reads the matched route from this scope.
                scope["headers"] = [
                    *((name, value) for name, value in headers if name.lower() != b"content-type"),
                    (b"content-type", JSON),
                ]
        await self.app(scope, receive, send)


__all__ = ["BodiesAreJson", "is_json_type"]
