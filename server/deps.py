"""Request-scoped dependencies shared by the HTTP routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, HTTPException, Request

from graph.context import Context
from server import logs
from server.auth import KeyRing, Principal, local_principal, presented_key
from server.ratelimit import RateLimiter, refusal, refusal_record
from server.runner import AgentRunner
from server.runs import RunManager

UNAUTHORIZED = (
    "Missing or invalid API key. Send it as X-Api-Key: <key> or Authorization: Bearer <key>."
)


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
    principal = keyring.authenticate(presented_key(x_api_key, authorization))
    if principal is None:
        audit = getattr(request.app.state, "audit", None)
        if audit is not None:
            await audit.login_failed(
                request.url.path,
                request.client.host if request.client else "",
                peer=getattr(request.state, "peer", None),
            )
        raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    logs.bind(user=principal.user_id)
    limiter: RateLimiter = request.app.state.limiter
    retry_after = limiter.admit(principal.user_id)
    if retry_after is not None:
        await request.app.state.audit.audit(
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
        request_id=logs.request_id_of(request),
    )
