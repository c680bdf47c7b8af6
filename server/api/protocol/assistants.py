"""Assistants: create, read, patch (a new version), delete, search, count, versions, latest.

One system assistant per served graph is listed for every user; a graph id is accepted
wherever an assistant id is. An assistant a user creates is theirs alone (404 for others).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from langgraph.channels.base import BaseChannel
from langgraph.pregel import Pregel
from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, create_model

from server.api.protocol.common import (
    Ctx,
    Runner,
    Runs,
    jsonable,
)
from server.runs.assistants import FIELDS, AssistantChange, SortField, SortOrder
from server.runs.engine import RunManager
from server.runs.graphs import ServedGraph
from server.runs.runner import TurnError
from server.security.limits import MAX_OFFSET, check_json_size, refuse_oversized_json

log = logging.getLogger(__name__)

router = APIRouter(tags=["agent protocol"])

AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]
# The run's own keys, which LangGraph sets itself: never part of a config schema.
_RUNTIME_KEYS = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns")
_THREAD_BATCH = 100


class AssistantCreate(BaseModel):
    """A new assistant: a graph and what its runs start with."""

    model_config = ConfigDict(extra="ignore")
    graph_id: str = Field(max_length=200, description="The graph the assistant runs.")
    assistant_id: str | None = Field(default=None, max_length=64, description="A UUID to use.")
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=10_000)


class AssistantPatch(BaseModel):
    """Changes for a new version; what is left out stays as the latest version has it."""

    model_config = ConfigDict(extra="ignore")
    graph_id: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="Merged into the latest.")
    name: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=10_000)


class AssistantSearch(BaseModel):
    """Which assistants to list, in which order, and which of their fields."""

    model_config = ConfigDict(extra="ignore")
    graph_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=1000)
    metadata: dict[str, Any] | None = None
    limit: StrictInt = Field(default=10, ge=1, le=1000)
    offset: StrictInt = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: SortField | None = None
    sort_order: SortOrder | None = None
    select: list[AssistantField] | None = Field(default=None, max_length=len(FIELDS))


class AssistantCount(BaseModel):
    """Which assistants to count."""

    model_config = ConfigDict(extra="ignore")
    graph_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=1000)
    metadata: dict[str, Any] | None = None


class VersionSearch(BaseModel):
    """Which versions of an assistant to list."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    limit: StrictInt = Field(default=10, ge=1, le=1000)
    offset: StrictInt = Field(default=0, ge=0, le=MAX_OFFSET)


class VersionChange(BaseModel):
    """The version to make the latest."""

    model_config = ConfigDict(extra="ignore")
    version: StrictInt = Field(ge=1, le=2**62)


def _check_graph(runs: RunManager, graph_id: str | None) -> None:
    if graph_id is not None and runs.runner.graphs.find(graph_id) is None:
        raise TurnError(
            404,
            f"Graph {graph_id!r} not found; this server serves"
            f" {', '.join(runs.runner.graphs.ids())}.",
        )


@router.post("/assistants")
async def create_assistant(body: AssistantCreate, context: Ctx, runs: Runs) -> dict[str, Any]:
    """Create an assistant of a served graph (`if_exists` says what an id clash does)."""
    refuse_oversized_json(
        runs.settings, config=body.config, context=body.context, metadata=body.metadata
    )
    if body.assistant_id is not None:
        runs.assistants.canonical_id(body.assistant_id)  # 422 unless a UUID
        if runs.runner.graphs.find(body.assistant_id) is not None:
            raise TurnError(422, "assistant_id must be a UUID, not a graph id.")
    change = AssistantChange(
        graph_id=body.graph_id,
        config=body.config,
        context=body.context,
        metadata=body.metadata,
        name=body.name,
        description=body.description,
    )
    return await runs.assistants.create(
        context.user_id, change, assistant_id=body.assistant_id, if_exists=body.if_exists
    )


@router.post("/assistants/search")
async def search_assistants(body: AssistantSearch, context: Ctx, runs: Runs) -> JSONResponse:
    """List the caller's and the system assistants; `X-Pagination-Next` when more follow."""
    refuse_oversized_json(runs.settings, metadata=body.metadata)
    _check_graph(runs, body.graph_id)
    found, more = await runs.assistants.search(
        context.user_id,
        graph_id=body.graph_id,
        name=body.name,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    if body.select:
        found = [{key: a[key] for key in body.select} for a in found]
    if more:
        following = body.offset + body.limit
        headers = {"X-Pagination-Total": str(following + 1), "X-Pagination-Next": str(following)}
    else:
        headers = {"X-Pagination-Total": str(body.offset + len(found))}
    return JSONResponse(jsonable(found), headers=headers)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCount, context: Ctx, runs: Runs) -> int:
    """Count the assistants a search with these filters would list."""
    refuse_oversized_json(runs.settings, metadata=body.metadata)
    _check_graph(runs, body.graph_id)
    return await runs.assistants.count(
        context.user_id, graph_id=body.graph_id, name=body.name, metadata=body.metadata
    )


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: str, context: Ctx, runs: Runs) -> dict[str, Any]:
    """Return the assistant (by its id, or by a graph id for that graph's system assistant)."""
    return await runs.assistants.get(assistant_id, context.user_id)


@router.patch("/assistants/{assistant_id}")
async def patch_assistant(
    assistant_id: str, body: AssistantPatch, context: Ctx, runs: Runs
) -> dict[str, Any]:
    """Write a new version of the caller's assistant and make it the latest."""
    settings = runs.settings
    refuse_oversized_json(
        settings, config=body.config, context=body.context, metadata=body.metadata
    )

    def check_metadata(merged: dict[str, Any]) -> None:
        try:
            check_json_size(merged, "merged metadata", settings)
        except ValueError as exc:
            raise TurnError(422, f"{exc} Nothing was changed.") from None

    change = AssistantChange(
        graph_id=body.graph_id,
        config=body.config,
        context=body.context,
        metadata=body.metadata,
        name=body.name,
        description=body.description,
    )
    return await runs.assistants.patch(assistant_id, context.user_id, change, check_metadata)


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str,
    context: Ctx,
    runner: Runner,
    runs: Runs,
    delete_threads: bool = False,
) -> Response:
    """Delete the caller's assistant and its versions; its live runs are cancelled.

    With `delete_threads=true` the caller's threads whose metadata names the assistant
    (`metadata.assistant_id`) are deleted too.
    """
    deleted = await runs.assistants.delete(assistant_id, context.user_id)
    for run_id in await runs.store.live_on_assistant(deleted, context.user_id):
        await runs.cancel(run_id)
    while delete_threads:
        batch = await runner.threads.search(
            context.user_id, metadata={"assistant_id": deleted}, limit=_THREAD_BATCH
        )
        for info in batch:
            await runs.delete_thread(info.thread_id)
        delete_threads = len(batch) == _THREAD_BATCH
    return Response(status_code=204)


@router.post("/assistants/{assistant_id}/versions")
async def list_assistant_versions(
    assistant_id: str, body: VersionSearch, context: Ctx, runs: Runs
) -> list[dict[str, Any]]:
    """List the assistant's versions, newest first."""
    refuse_oversized_json(runs.settings, metadata=body.metadata)
    return await runs.assistants.versions(
        assistant_id,
        context.user_id,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
    )


@router.post("/assistants/{assistant_id}/latest")
async def set_latest_version(
    assistant_id: str, body: VersionChange, context: Ctx, runs: Runs
) -> dict[str, Any]:
    """Make one of the assistant's versions the latest (the one runs use)."""
    return await runs.assistants.set_latest(assistant_id, context.user_id, body.version)


async def _served(assistant_id: str, context: Ctx, runs: RunManager) -> ServedGraph:
    found = await runs.assistants.get(assistant_id, context.user_id)
    return runs.runner.graphs.get(found["graph_id"])


def _xray(value: str | None) -> bool | int:
    if value is None or value in ("false", "False"):
        return False
    if value in ("true", "True"):
        return True
    if value.isdigit() and 0 < int(value) <= 100:
        return int(value)
    raise TurnError(422, "xray is true, false or a positive depth such as 2.")


@router.get("/assistants/{assistant_id}/graph")
async def get_assistant_graph(
    assistant_id: str,
    context: Ctx,
    runs: Runs,
    xray: Annotated[str | None, Query(max_length=10)] = None,
) -> dict[str, Any]:
    """Return the drawing of the assistant's graph (`xray`: with subgraphs, to that depth)."""
    depth = _xray(xray)
    served = await _served(assistant_id, context, runs)
    drawing = (await served.graph.aget_graph(xray=depth)).to_json()
    for node in drawing.get("nodes", []):
        data = node.get("data")
        if isinstance(data, dict):
            data.pop("id", None)  # a Python import path: nothing a client needs
    return jsonable(drawing)  # type: ignore[no-any-return]


@router.get("/assistants/{assistant_id}/schemas")
async def get_assistant_schemas(assistant_id: str, context: Ctx, runs: Runs) -> dict[str, Any]:
    """Return the input, output, state, config and context JSON schemas of the assistant's graph."""
    served = await _served(assistant_id, context, runs)
    return {"graph_id": served.graph_id, **graph_schemas(served.graph)}


@router.get("/assistants/{assistant_id}/subgraphs")
@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def get_assistant_subgraphs(
    assistant_id: str,
    context: Ctx,
    runs: Runs,
    namespace: str | None = None,
    recurse: bool = False,
) -> dict[str, Any]:
    """Return the schemas of the graph's subgraphs by namespace (`a|b`; deeper with `recurse`)."""
    served = await _served(assistant_id, context, runs)
    return {
        name: graph_schemas(subgraph) if isinstance(subgraph, Pregel) else {}
        async for name, subgraph in served.graph.aget_subgraphs(
            namespace=namespace, recurse=recurse
        )
    }


def graph_schemas(graph: Pregel[Any, Any, Any, Any]) -> dict[str, Any]:
    """A graph's JSON schemas as the Agent Server lists them; None for one it cannot draw up."""
    return {
        "input_schema": _schema(graph, "input", graph.get_input_jsonschema),
        "output_schema": _schema(graph, "output", graph.get_output_jsonschema),
        "state_schema": _schema(graph, "state", lambda: _state_schema(graph)),
        "config_schema": _schema(graph, "config", lambda: _config_schema(graph)),
        "context_schema": _schema(graph, "context", graph.get_context_jsonschema),
    }


def _schema(graph: Pregel[Any, Any, Any, Any], what: str, make: Any) -> Any:
    try:
        return jsonable(make())
    except Exception:
        # A channel or context type pydantic cannot describe: the other schemas still serve.
        log.warning("no %s schema for graph %s", what, graph.name, exc_info=True)
        return None


def _state_schema(graph: Pregel[Any, Any, Any, Any]) -> dict[str, Any]:
    """Every channel a client sees in the state, each with the type its updates have."""
    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        channel = graph.channels[key]
        kind = channel.UpdateType if isinstance(channel, BaseChannel) else Any
        try:
            TypeAdapter(kind).json_schema()
        except Exception:
            kind = Any  # e.g. a type pydantic cannot describe: the field stays, untyped
        fields[key] = (kind, None)
    model = create_model(graph.get_name("State"), **fields)
    return model.model_json_schema()


def _config_schema(graph: Pregel[Any, Any, Any, Any]) -> dict[str, Any]:
    """What `config.configurable` takes: the context schema (LangGraph ≥ 0.6 maps one to other)."""
    schema = graph.get_context_jsonschema()
    if not schema:
        return {}
    for key in _RUNTIME_KEYS:
        schema.get("properties", {}).pop(key, None)
    return schema
