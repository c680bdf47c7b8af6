"""Request-scoped dependencies shared by the HTTP routes."""

from __future__ import annotations

import uuid

from fastapi import Request

from graph.context import Context
from server.runner import AgentRunner
from server.runs import RunManager


def runner_of(request: Request) -> AgentRunner:
    """Return the process's runner."""
    runner: AgentRunner = request.app.state.runner
    return runner


def runs_of(request: Request) -> RunManager:
    """Return the process's run manager."""
    manager: RunManager = request.app.state.runs
    return manager


def context_of(request: Request) -> Context:
    """Return who is asking; until API keys exist, everyone is the local admin (loopback only)."""
    return Context(request_id=request.headers.get("x-request-id") or str(uuid.uuid4()))
