"""What every Agent Server protocol route shares: ids, dependencies, JSON conversion."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header
from pydantic_core import to_jsonable_python

from graph.context import Context
from server.api.deps import context_of, runner_of, runs_of
from server.runs.engine import RunManager
from server.runs.graphs import system_assistant_id
from server.runs.runner import AgentRunner

GRAPH_ID = "agent"
ASSISTANT_ID = system_assistant_id(GRAPH_ID)
CREATED = "2026-01-01T00:00:00+00:00"
VERSION = "0.1.0"

Runner = Annotated[AgentRunner, Depends(runner_of)]
Runs = Annotated[RunManager, Depends(runs_of)]
Ctx = Annotated[Context, Depends(context_of)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def jsonable(value: Any) -> Any:
    """Plain JSON types, the way the stock Agent Server writes graph values; unknowns as text."""
    return to_jsonable_python(value, fallback=str)
