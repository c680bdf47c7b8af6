"""What a web page in the user's browser may make this server do, and the page's own headers.

Without keys the server acts as the local admin for anything that reaches loopback, and
every web page the user opens can send requests to loopback. Two checks keep those pages
out, shared by the HTTP API and `taskagent mcp --http`:

- **DNS rebinding.** A page on evil.example whose name is later made to resolve to
  127.0.0.1 is "same origin" with this server in the browser's eyes, but it still sends
  `Host: evil.example`. Only names this server answers to pass: `localhost` and
  `*.localhost` (browsers resolve those themselves, never through an attacker's DNS), IP
  literals (a rebinding attack needs a name; a page that used an IP literal is on that
  IP's own origin), and the names listed in TASKAGENT_ALLOWED_HOSTS. The check applies
  with keys too: it costs a keyed deployment one setting for its public name, and the
  server then has one rule in every mode.
- **Cross-site writes.** A page elsewhere cannot read our answers but can still send
  POSTs (forms, `fetch(..., {mode: "no-cors"})`). Browsers label every request with
  `Sec-Fetch-Site` (or at least `Origin`) and page scripts cannot forge either, so a
  state-changing request labelled as coming from another origin is refused unless that
  origin is on TASKAGENT_ALLOWED_ORIGINS (by default loopback pages of any port and
  LangGraph Studio; `server/security/cors.py` answers CORS for the same list).
  Clients that are not browsers (curl, the SDK, the CLI) send neither label and pass.
  The rule follows Go's `net/http.CrossOriginProtection`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Collection, Container, Iterable, Mapping

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.security.asgi_reply import refuse

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "*.localhost")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The chat page loads only its own files; nothing inline, nothing from elsewhere.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
RESPONSE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/?#@\\]+)(?::(?P<port>\d{1,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#@\\\s]+)")
SHOWN_CHARS = 80


def host_name(header: str) -> str | None:
    """Return the lowercased name in a Host header (no brackets, no port), or None if malformed."""
    found = _HOST.fullmatch(header.strip())
    if found is None:
        return None
    name = found["name"].lower().rstrip(".")
    if name.startswith("["):
        name = name[1:-1]
        if not _is_ip(name):
            return None
    return name or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback_host(host: str) -> bool:
    """Return whether `host` names an interface only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(name: str, allowed: Iterable[str]) -> bool:
    """Return whether a Host name is one this server answers to (see the module docstring)."""
    if _is_ip(name):
        return True
    for pattern in (*LOOPBACK_NAMES, *allowed):
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def host_refusal(headers: Mapping[str, str], allowed_hosts: Iterable[str]) -> str | None:
    """Return why the request's Host is refused (a sentence), or None when it is allowed."""
    header = headers.get("host")
    if header is None:
        return "A Host header is required."
    name = host_name(header)
    if name is not None and host_allowed(name, allowed_hosts):
        return None
    return (
        f"Host {_shown(header)} is not a name this server answers to; if it is yours,"
        " add it to TASKAGENT_ALLOWED_HOSTS."
    )


def write_refusal(
    method: str, headers: Mapping[str, str], allowed_origins: Container[str]
) -> str | None:
    """Return why a browser's cross-site write is refused (a sentence), or None to let it pass."""
    if method in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin.lower().rstrip("/") in allowed_origins:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return None
    elif origin is None or _origin_host(origin) == headers.get("host", "").lower():
        return None
    return (
        f"Refused a {method} from a web page on another site ({_shown(origin or site or '')});"
        " if that page is yours, add its origin to TASKAGENT_ALLOWED_ORIGINS."
    )


def _origin_host(origin: str) -> str | None:
    found = _ORIGIN.fullmatch(origin.lower())
    return found["host"] if found else None


def _shown(value: str) -> str:
    return repr(value[:SHOWN_CHARS] + ("…" if len(value) > SHOWN_CHARS else ""))


def header_map(scope: Scope) -> dict[str, str]:
    """Return a request's headers as a dict of lowercased names (the last value wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class BrowserGuard:
    """ASGI middleware: 400 for a Host this server does not answer to, 403 for cross-site writes."""

    def __init__(
        self, app: ASGIApp, allowed_hosts: Iterable[str], allowed_origins: Container[str]
    ) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests a browser page may send on to the app; answer the rest."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = header_map(scope)
        refusal = host_refusal(headers, self.allowed_hosts)
        status = 400
        if refusal is None:
            refusal, status = write_refusal(scope["method"], headers, self.allowed_origins), 403
        if refusal is None:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: %s", scope["method"], scope["path"][:SHOWN_CHARS], refusal)
        await refuse(send, status, refusal)


class SecurityHeaders:
    """ASGI middleware: nosniff, no framing, no referrer on every answer; the page's CSP."""

    def __init__(self, app: ASGIApp, csp_exempt: Collection[str] = ()) -> None:
        self.app = app
        self.csp_exempt = csp_exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response unless the app set them itself."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = scope["path"] not in self.csp_exempt

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in RESPONSE_HEADERS.items():
                    headers.setdefault(name, value)
                if csp:
                    headers.setdefault("content-security-policy", PAGE_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def protect(
    app: Starlette,
    allowed_hosts: Iterable[str],
    allowed_origins: Container[str],
    csp_exempt: Collection[str] = (),
) -> None:
    """Wrap everything registered so far in BrowserGuard, and that in SecurityHeaders."""
    app.add_middleware(
        BrowserGuard, allowed_hosts=list(allowed_hosts), allowed_origins=allowed_origins
    )
    # Outside the guard, so its refusals carry the headers too.
    app.add_middleware(SecurityHeaders, csp_exempt=csp_exempt)


__all__ = [
    "PAGE_CSP",
    "BrowserGuard",
    "SecurityHeaders",
    "host_allowed",
    "host_name",
    "host_refusal",
    "is_loopback_host",
    "protect",
    "write_refusal",
]
