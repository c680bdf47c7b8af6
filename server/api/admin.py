"""Admin-only routes: the audit trail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from graph.context import Context
from server.api.deps import context_of, runner_of
from server.runs.runner import AgentRunner, TurnError

router = APIRouter(tags=["admin"])


@router.get("/audit")
async def audit(
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
    user: str | None = None,
    kind: str | None = None,
    tool: str | None = None,
    thread_id: str | None = None,
    since: Annotated[str | None, Query(description="ISO timestamp, inclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Return audit rows, newest first: tool executions, denials, approvals, failed logins."""
    if context.role != "admin":
        raise TurnError(403, "Only admins may read the audit trail.")
    return await runner.services.tasks.audit_rows(
        user=user, kind=kind, tool=tool, thread_id=thread_id, since=since, limit=limit
    )
