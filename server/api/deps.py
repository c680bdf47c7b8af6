"""Request-scoped dependencies shared by the HTTP routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, HTTPException, Request

from graph.context import Context
from graph.settings import Settings
from server.observability import logs
from server.observability.request_context import request_id_of
from server.runs.engine import RunManager
from server.runs.runner import AgentRunner
from server.security.auth import KeyRing, Principal, local_principal, presented_key
from server.security.ratelimit import (
    AuthFailureLimiter,
    RateLimiter,
    refusal,
    refusal_record,
    too_many_failures,
)
from tools.audit import AuditRecord
from tools.store import TaskStore

UNAUTHORIZED = (
    "Missing or invalid API key. Send it as X-Api-Key: <key> or Authorization: Bearer <key>."
)
# Studio marks its LangSmith sign-in with this scheme; `langgraph dev` lets it in unchecked.
# Here it names no one: only one of this server's keys does, sent the usual way.
LANGSMITH_SIGN_IN = (
    "A LangSmith sign-in (x-auth-scheme: langsmith) is not a key of this server. Send one of"
    " its API keys as X-Api-Key: <key> or Authorization: Bearer <key>."
)


def settings_of(request: Request) -> Settings:
    """Return the settings of the app serving the request (never the environment's)."""
    settings: Settings = request.app.state.settings
    return settings


def runner_of(request: Request) -> AgentRunner:
    """Return the process's runner."""
    runner: AgentRunner = request.app.state.runner
    return runner


def runs_of(request: Request) -> RunManager:
    """Return the process's run manager."""
    manager: RunManager = request.app.state.runs
    return manager


async def principal_of(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias="X-Api-Key")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """Return the caller, or answer 401; without configured keys, the local admin."""
    keyring: KeyRing = request.app.state.keyring
    if not keyring.enabled:
        local = local_principal()
        logs.bind(user=local.user_id)
        return local
    client = request.client.host if request.client else ""
    failures: AuthFailureLimiter = request.app.state.auth_failures
    audit: TaskStore = request.app.state.audit
    blocked = await failures.retry_after(client)
    if blocked is not None:
        # Refused before the key is looked at, so guessing goes no faster with a right one.
        await audit.audit(
            AuditRecord(
                "rate_limit",
                user="?",
                success=False,
                error=f"failed authentications: retry after {blocked}s",
                detail={"client": client, "path": request.url.path},
            )
        )
        raise HTTPException(
            429, too_many_failures(client, blocked), headers={"Retry-After": str(blocked)}
        )
    principal = keyring.authenticate(presented_key(x_api_key, authorization))
    if principal is None:
        await failures.failed(client)
        await audit.login_failed(
            request.url.path, client, peer=getattr(request.state, "peer", None)
        )
        scheme = request.headers.get("x-auth-scheme", "").strip().lower()
        detail = LANGSMITH_SIGN_IN if scheme == "langsmith" else UNAUTHORIZED
        raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
    logs.bind(user=principal.user_id)
    limiter: RateLimiter = request.app.state.limiter
    retry_after = await limiter.admit(principal.user_id)
    if retry_after is not None:
        await audit.audit(
            refusal_record(principal.user_id, principal.role, retry_after, path=request.url.path)
        )
        raise HTTPException(
            429,
            refusal(principal.user_id, retry_after),
            headers={"Retry-After": str(retry_after)},
        )
    request.state.principal = principal
    return principal


async def context_of(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias="X-Api-Key")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Context:
    """Return the run context of the authenticated caller."""
    principal = await principal_of(request, x_api_key, authorization)
    return Context(
        user_id=principal.user_id,
        role=principal.role,
        request_id=request_id_of(request),
    )
