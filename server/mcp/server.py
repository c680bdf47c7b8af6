"""`taskagent mcp`: the task tools and the agent, served to MCP clients.

Over stdio (the default) the server acts for the one user whose key is in
`TASKAGENT_API_KEY`; with `--http` it serves streamable HTTP on loopback, where every
request presents its own key the way the HTTP API does. The tools live in
`server/mcp/tools.py`, loaded only when the server starts so other commands stay quick.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Annotated

import typer

from graph.redaction import Redactor
from graph.settings import Settings, get_settings
from server.security.asgi_reply import refuse
from server.security.auth import KeyError_, KeyRing, Principal, local_principal, presented_key
from server.security.browser_guard import header_map, host_refusal, is_loopback_host
from server.security.cors import AllowedOrigins
from server.security.ratelimit import too_many_failures
from tools.storage_errors import RETRY_AFTER_S, classify
from tools.store import TaskStore

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from server.mcp.tools import TaskAgentMCP

log = logging.getLogger("taskagent.mcp")

DEFAULT_HTTP_PORT = 8765


class IdentityError(Exception):
    """No usable identity: keys are configured and the presented key is missing or wrong."""


def resolve_principal(settings: Settings, presented: str | None) -> Principal:
    """Return who a key acts for: the local admin without configured keys, else its owner.

    Raises IdentityError with a message for the user when keys are configured and the key
    is missing or matches none, and KeyError_ when the key configuration is malformed.
    """
    keyring = KeyRing.from_settings(settings)
    if not keyring.enabled:
        return local_principal()
    if not presented:
        raise IdentityError(
            "API keys are configured, so `taskagent mcp` needs yours: set TASKAGENT_API_KEY"
            " in the server's environment (create one with `taskagent keys add --user <name>`)."
        )
    principal = keyring.authenticate(presented)
    if principal is None:
        raise IdentityError(
            "TASKAGENT_API_KEY matches none of the configured keys (TASKAGENT_API_KEYS or"
            f" {settings.keys_path}); check the key or create one with `taskagent keys add`."
        )
    return principal


# --- HTTP ----------------------------------------------------------------------------------


def is_local_origin(origin: str) -> bool:
    """Return whether a browser Origin is a page served from this machine."""
    scheme, _, rest = origin.partition("://")
    if scheme not in ("http", "https") or not rest:
        return False
    host = rest.split("/", 1)[0]
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.rsplit(":", 1)[0]
    return is_loopback_host(host)


class LoopbackGate:
    """Refuse foreign Host names (400), foreign origins (403) and, with keys, unkeyed calls (401).

    A web page the user visits can reach a loopback port; its Host and Origin give it away.
    The Host rule is the HTTP API's (`server/security/browser_guard.py`); local pages and the
    origins on TASKAGENT_ALLOWED_ORIGINS may call (MCP inspectors run on localhost).
    """

    def __init__(self, app: ASGIApp, service: TaskAgentMCP) -> None:
        self.app = app
        self.service = service
        self.allowed_hosts = service.settings.allowed_hosts
        self.allowed_origins = AllowedOrigins.parse(service.settings.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass allowed requests on to the MCP app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = header_map(scope)
        refusal = host_refusal(headers, self.allowed_hosts)
        if refusal is not None:
            log.warning("refused a request: %s", refusal)
            await refuse(send, 400, refusal)
            return
        origin = headers.get("origin")
        if (
            origin is not None
            and not is_local_origin(origin)
            and origin.lower().rstrip("/") not in self.allowed_origins
        ):
            log.warning("refused a request from origin %r", origin)
            await refuse(
                send, 403, "Forbidden: requests from web pages on other sites are refused."
            )
            return
        if self.service.keyring.enabled:
            try:
                refused = await self._refuse_unkeyed(scope, headers, send)
            except Exception as exc:
                storage = classify(exc)  # the limiter's or the audit's database is out
                if storage is None:
                    raise
                log.warning("storage unavailable on %s: %s", scope.get("path", ""), storage.reason)
                retry = [(b"retry-after", str(RETRY_AFTER_S).encode())]
                await refuse(send, 503, storage.message, retry)
                return
            if refused:
                return
        await self.app(scope, receive, send)

    async def _refuse_unkeyed(self, scope: Scope, headers: dict[str, str], send: Send) -> bool:
        """Answer 429 to a guessing address or 401 to a missing or wrong key; say if it did."""
        client = (scope.get("client") or ("", 0))[0]
        blocked = await self.service.auth_failures.retry_after(client)
        if blocked is not None:
            await refuse(
                send,
                429,
                too_many_failures(client, blocked),
                [(b"retry-after", str(blocked).encode())],
            )
            return True
        presented = presented_key(headers.get("x-api-key"), headers.get("authorization"))
        if self.service.keyring.authenticate(presented) is not None:
            return False
        await self.service.auth_failures.failed(client)
        await self.service.audit_login_failed(scope.get("path", ""), client)
        await refuse(
            send,
            401,
            "Missing or invalid API key. Send it as Authorization: Bearer <key>"
            " or X-Api-Key: <key>.",
            [(b"www-authenticate", b"Bearer")],
        )
        return True


def http_app(service: TaskAgentMCP, host: str) -> ASGIApp:
    """Return the streamable HTTP app (at /mcp) behind the loopback gate."""
    from mcp.server.transport_security import TransportSecuritySettings

    server = service.build()
    # LoopbackGate checks Host and Origin with the HTTP API's rule (it knows *.localhost and
    # TASKAGENT_ALLOWED_HOSTS, which the SDK's exact host:port list cannot express).
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(host=host, transport_security=security)
    return LoopbackGate(app, service)


# --- the command ---------------------------------------------------------------------------


def _fail(message: str, code: int = 2) -> typer.Exit:
    # stdout is the protocol channel: every word for the user goes to stderr.
    typer.echo(f"taskagent mcp: {message}", err=True)
    return typer.Exit(code)


def mcp_command(
    http: Annotated[
        bool,
        typer.Option(
            "--http",
            help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio.",
        ),
    ] = False,
    host: Annotated[
        str,
        typer.Option(help="Interface for --http; loopback only (127.0.0.1, ::1, localhost)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for --http.")] = DEFAULT_HTTP_PORT,
) -> None:
    """Serve the task tools and the agent to MCP clients (Claude Desktop and others).

    Tools: the task tools, ask_agent (one agent turn) and answer_approval (resume a turn).

    Over stdio it acts for the owner of TASKAGENT_API_KEY (the local admin without keys).

    --http serves loopback only; each request sends its key as Authorization: Bearer <key>.
    """
    import logging.config

    from server.cli.options import prepare_data_dir
    from server.mcp.tools import TaskAgentMCP
    from server.observability.logs import bind, log_config

    settings = get_settings()
    prepare_data_dir(settings)
    # stdout is the protocol channel over stdio: every log line goes to stderr.
    redactor = Redactor.from_settings(settings)
    logging.config.dictConfig(
        log_config(settings.log_level, settings.log_format, redactor=redactor)
    )
    if http and not is_loopback_host(host):
        raise _fail(
            f"refusing to bind {host}: the MCP HTTP server only serves loopback"
            " (127.0.0.1, ::1 or localhost)."
        )
    try:
        keyring = KeyRing.from_settings(settings)
        principal = (
            None if http else resolve_principal(settings, os.environ.get("TASKAGENT_API_KEY"))
        )
    except IdentityError as exc:
        _audit_login_failed(settings)
        raise _fail(str(exc)) from None
    except (KeyError_, ValueError) as exc:
        raise _fail(f"invalid key configuration: {exc}") from None
    service = TaskAgentMCP(settings, principal, keyring)
    if not http:
        assert principal is not None
        if principal.local and os.environ.get("TASKAGENT_API_KEY"):
            log.warning("TASKAGENT_API_KEY is ignored: no keys are configured, so this is local")
        bind(user=principal.user_id)
        log.info("serving MCP over stdio for %s (%s)", principal.user_id, principal.role)
        service.build().run("stdio")
        return
    import uvicorn

    log.info("serving MCP over streamable HTTP at http://%s:%d/mcp", host, port)
    uvicorn.run(
        http_app(service, host),
        host=host,
        port=port,
        proxy_headers=False,  # a local process must not choose the address the audit records
        log_level=settings.log_level.lower(),
        log_config=log_config(settings.log_level, settings.log_format, redactor=redactor),
    )


def _audit_login_failed(settings: Settings) -> None:
    async def record() -> None:
        store = await TaskStore.open(
            settings.tasks_db,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.sqlite_synchronous,
            redactor=Redactor.from_settings(settings),
            database_url=settings.postgres_url,
        )
        try:
            await store.login_failed("mcp", "stdio")
        finally:
            await store.close()

    try:
        asyncio.run(record())
    except Exception:
        log.exception("could not audit the refused MCP start")


__all__ = ["IdentityError", "http_app", "mcp_command", "resolve_principal"]
