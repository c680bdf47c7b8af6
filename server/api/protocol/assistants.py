"""Assistants: the graphs this server serves, and their schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.api.protocol.common import (
    ASSISTANT_ID,
    CREATED,
    GRAPH_ID,
    Ctx,
    Runner,
    jsonable,
)
from server.runs.runner import TurnError

router = APIRouter(tags=["agent protocol"])


def _assistant() -> dict[str, Any]:
    return {
        "assistant_id": ASSISTANT_ID,
        "graph_id": GRAPH_ID,
        "name": GRAPH_ID,
        "description": "Task-management agent: guard, router, model tiers, tools, approvals.",
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": CREATED,
        "updated_at": CREATED,
    }


def check_assistant(assistant_id: str) -> None:
    """Raise 404 unless `assistant_id` names an assistant of this server."""
    if assistant_id not in (ASSISTANT_ID, GRAPH_ID):
        raise TurnError(
            404, f"Assistant {assistant_id} not found; this server serves {GRAPH_ID!r}."
        )


@router.post("/assistants/search")
async def search_assistants(context: Ctx) -> list[dict[str, Any]]:
    """List the assistants: one, for graph `agent`."""
    return [_assistant()]


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, context: Ctx) -> dict[str, Any]:
    """Return the assistant (by its id or by the graph id `agent`)."""
    check_assistant(assistant_id)
    return _assistant()


@router.get("/assistants/{assistant_id}/graph")
async def get_assistant_graph(assistant_id: str, runner: Runner, context: Ctx) -> dict[str, Any]:
    """Return the graph's nodes and edges."""
    check_assistant(assistant_id)
    return jsonable(runner.graph.get_graph().to_json())  # type: ignore[no-any-return]


@router.get("/assistants/{assistant_id}/schemas")
async def get_assistant_schemas(assistant_id: str, runner: Runner, context: Ctx) -> dict[str, Any]:
    """Return the graph's input, output, state and context JSON schemas."""
    check_assistant(assistant_id)
    graph = runner.graph
    return {
        "graph_id": GRAPH_ID,
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": graph.get_output_jsonschema(),
        "config_schema": {},
        "context_schema": graph.get_context_jsonschema(),
    }


@router.get("/assistants/{assistant_id}/subgraphs")
async def get_assistant_subgraphs(assistant_id: str, context: Ctx) -> dict[str, Any]:
    """Return the subgraphs: none."""
    check_assistant(assistant_id)
    return {}
