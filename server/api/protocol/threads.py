"""Threads: create, find, count, copy, prune and delete them; read, update and fork their state."""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.types import Interrupt, StateSnapshot
from langgraph.types import StateUpdate as GraphUpdate
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from server.api.protocol.common import (
    Ctx,
    Runner,
    Runs,
    jsonable,
)
from server.runs.graphs import Compiled
from server.runs.runner import AgentRunner, TurnError
from server.runs.state_updates import RefusedUpdate, check_task_agent_update
from server.runs.thread_ttl import keep_latest
from server.runs.threads import SortBy, ThreadInfo, TtlStrategy, json_contains
from server.security.limits import (
    MAX_OFFSET,
    MAX_TTL_MINUTES,
    check_json_size,
    merge_patch,
    refuse_oversized_json,
)

router = APIRouter(tags=["agent protocol"])

MAX_IDS = 1000
"""Thread ids one search or prune names at most."""
MAX_VALUES_SCAN = 1000
"""Threads whose state a `values` filter reads at most; narrower filters serve more threads."""
THREAD_FIELDS = (
    "error",
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
)
ThreadField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
]
ThreadStatusFilter = Literal["idle", "busy", "interrupted", "error"]


class TtlConfig(BaseModel):
    """A thread's time to live: what the sweeper does once `ttl` minutes have passed."""

    model_config = ConfigDict(extra="ignore")
    strategy: TtlStrategy = Field(
        default="delete",
        description="`delete` removes the thread; `keep_latest` prunes it to its latest state.",
    )
    ttl: float = Field(gt=0, le=MAX_TTL_MINUTES, description="Minutes from now.")


class CheckpointConfig(BaseModel):
    """A checkpoint of a thread (its namespace names a subgraph; empty is the root graph)."""

    model_config = ConfigDict(extra="ignore")
    thread_id: str | None = Field(default=None, max_length=200)
    checkpoint_ns: str = Field(default="", max_length=1000)
    checkpoint_id: str | None = Field(default=None, max_length=200)
    checkpoint_map: dict[str, Any] | None = None


class SuperstepUpdate(BaseModel):
    """One update of a superstep: values written as a node."""

    model_config = ConfigDict(extra="ignore")
    values: dict[str, Any] | list[Any] | None = None
    command: dict[str, Any] | None = None
    as_node: str = Field(max_length=200)


class Superstep(BaseModel):
    """Updates applied together, as one step of the graph."""

    model_config = ConfigDict(extra="ignore")
    updates: list[SuperstepUpdate] = Field(min_length=1, max_length=100)


class ThreadCreate(BaseModel):
    """Create a thread, optionally with a chosen id, a TTL and state to start from."""

    model_config = ConfigDict(extra="ignore")
    thread_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: TtlConfig | None = None
    supersteps: list[Superstep] | None = Field(default=None, max_length=1000)


class ThreadPatch(BaseModel):
    """Change a thread's metadata (merged) and TTL (replaced)."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl: TtlConfig | None = None


class ThreadCount(BaseModel):
    """Which threads to count."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: ThreadStatusFilter | None = None


class ThreadSearch(ThreadCount):
    """Filter, sort and page threads."""

    ids: list[str] | None = Field(default=None, max_length=MAX_IDS)
    limit: StrictInt = Field(default=10, ge=1, le=1000)
    offset: StrictInt = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[ThreadField] | None = None
    extract: dict[str, Any] | None = None


class ThreadPrune(BaseModel):
    """Threads to prune, and how."""

    model_config = ConfigDict(extra="ignore")
    thread_ids: list[str] = Field(max_length=MAX_IDS)
    strategy: TtlStrategy = "delete"


class StateUpdate(BaseModel):
    """Write values into a thread's state as if a node had, or fork a checkpoint."""

    model_config = ConfigDict(extra="ignore")
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = Field(default=None, max_length=200)
    checkpoint: CheckpointConfig | None = None
    checkpoint_id: str | None = Field(default=None, max_length=200)


class StateAtCheckpoint(BaseModel):
    """The checkpoint whose state to read."""

    model_config = ConfigDict(extra="ignore")
    checkpoint: CheckpointConfig
    subgraphs: bool = False


class HistoryQuery(BaseModel):
    """Which checkpoints of a thread to list."""

    model_config = ConfigDict(extra="ignore")
    limit: StrictInt = Field(default=1, ge=1, le=1000)
    before: CheckpointConfig | str | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointConfig | None = None

    @field_validator("before", mode="before")
    @classmethod
    def _unwrap_config(cls, value: Any) -> Any:
        """Take `before` as a config too (`{"configurable": {...}}`), the form dev takes."""
        if isinstance(value, dict) and isinstance(value.get("configurable"), dict):
            return value["configurable"]
        return value


# --- shapes ----------------------------------------------------------------------------------


def _checkpoint(config: RunnableConfig | None) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    checkpoint = {
        "checkpoint_id": configurable["checkpoint_id"],
        "thread_id": configurable["thread_id"],
        "checkpoint_ns": configurable.get("checkpoint_ns") or "",
    }
    if "checkpoint_map" in configurable:
        checkpoint["checkpoint_map"] = jsonable(configurable["checkpoint_map"])
    return checkpoint


def error_name(error: BaseException | str | None) -> str | None:
    """Name the exception a task stopped with (its text stays in the server log).

    A checkpoint keeps a task's error as the exception's repr, e.g. "ValueError('...')".
    """
    if error is None:
        return None
    if isinstance(error, BaseException):
        return type(error).__name__
    match = re.match(r"[A-Za-z_][\w.]*", error)
    return match.group(0) if match else "Error"


def interrupt_json(item: Interrupt) -> dict[str, Any]:
    """An interrupt as the Agent Server shows it: its id and value."""
    shown = {"id": item.id, "value": jsonable(item.value)}
    if item.response_schema is not None:
        shown["response_schema"] = jsonable(item.response_schema)
    return shown


def state_json(snapshot: StateSnapshot) -> dict[str, Any]:
    """Return a StateSnapshot the way the Agent Server shows a thread state.

    A task that runs a subgraph names the subgraph's checkpoint; read with `subgraphs`,
    it carries the subgraph's whole state instead.
    """
    config = snapshot.config or {}
    parent = snapshot.parent_config or {}
    return {
        "values": jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "path": jsonable(task.path),
                "error": error_name(task.error),
                "interrupts": [interrupt_json(item) for item in task.interrupts],
                "checkpoint": jsonable(task.state["configurable"])
                if task.state is not None and not isinstance(task.state, StateSnapshot)
                else None,
                "state": state_json(task.state) if isinstance(task.state, StateSnapshot) else None,
                "result": jsonable(task.result),
            }
            for task in snapshot.tasks
        ],
        "metadata": jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "checkpoint": _checkpoint(snapshot.config),
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "interrupts": [interrupt_json(item) for item in snapshot.interrupts],
        # Deprecated in the protocol, still read by older clients.
        "checkpoint_id": (config.get("configurable") or {}).get("checkpoint_id"),
        "parent_checkpoint_id": (parent.get("configurable") or {}).get("checkpoint_id"),
    }


def _config(thread_id: str, checkpoint: CheckpointConfig | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint is not None:
        configurable["checkpoint_ns"] = checkpoint.checkpoint_ns
        if checkpoint.checkpoint_id:
            configurable["checkpoint_id"] = checkpoint.checkpoint_id
        if checkpoint.checkpoint_map is not None:
            configurable["checkpoint_map"] = checkpoint.checkpoint_map
    return {"configurable": configurable}


def _graph(runner: AgentRunner, info: ThreadInfo) -> Compiled:
    return runner.graph_of(info).graph


async def _state(
    graph: Compiled, config: RunnableConfig, *, subgraphs: bool = False
) -> StateSnapshot:
    try:
        return await graph.aget_state(config, subgraphs=subgraphs)
    except ValueError:
        # LangGraph's answer for a checkpoint namespace that names no subgraph.
        namespace = config["configurable"].get("checkpoint_ns")
        raise TurnError(404, f"No subgraph of this thread's graph at {namespace!r}.") from None


async def _thread_json(
    runner: AgentRunner,
    info: ThreadInfo,
    *,
    select: list[ThreadField] | None = None,
    include_ttl: bool = False,
) -> dict[str, Any]:
    wanted = set(select or THREAD_FIELDS)
    values: Any = None
    interrupts: dict[str, list[Any]] = {}
    if wanted & {"values", "interrupts"} and runner.graphs.find(_graph_id(info)) is not None:
        snapshot = await _state(_graph(runner, info), _config(info.thread_id))
        if snapshot.created_at is not None:
            values = jsonable(snapshot.values)
        for task in snapshot.tasks:
            if task.interrupts:
                interrupts[task.id] = [interrupt_json(item) for item in task.interrupts]
    shown = {
        "thread_id": info.thread_id,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "state_updated_at": info.updated_at,
        "metadata": info.metadata,
        "config": {} if values is None else {"configurable": {}},
        "status": info.status,
        "values": values,
        "error": None,
        "interrupts": interrupts,
    }
    if values is None and not select:
        # A thread with no state yet, as langgraph dev shows one: no error or interrupts keys.
        del shown["error"], shown["interrupts"]
    if select:
        shown = {key: value for key, value in shown.items() if key in wanted}
    if include_ttl:
        shown["ttl"] = info.ttl
    return shown


def _graph_id(info: ThreadInfo) -> str:
    return str(info.metadata.get("graph_id") or "agent")


async def _settle(runner: AgentRunner, graph: Compiled, thread_id: str) -> None:
    """Record the thread idle, or interrupted with what it waits on, from its latest state."""
    snapshot = await graph.aget_state(_config(thread_id))
    waiting: dict[str, Any] | None = None
    for item in snapshot.interrupts:
        waiting = item.value if isinstance(item.value, dict) else {"value": item.value}
        break
    await runner.threads.finish_run(thread_id, "interrupted" if waiting else "idle", waiting)


# --- threads ---------------------------------------------------------------------------------


@router.post("/threads")
async def create_thread(
    body: ThreadCreate, context: Ctx, runner: Runner, runs: Runs
) -> dict[str, Any]:
    """Create a thread (a client may choose its id; `if_exists` says what a clash does)."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    if any(update.command is not None for step in body.supersteps or [] for update in step.updates):
        raise TurnError(422, "supersteps updates take values and as_node; command is refused.")
    thread_id = body.thread_id or str(uuid.uuid4())
    info, created = await runs.create_thread(context, thread_id, body.metadata)
    if not created and (body.if_exists == "raise" or info.owner != context.user_id):
        raise TurnError(409, f"Thread {thread_id} already exists.")
    if created and body.supersteps:
        try:
            await _apply_supersteps(runner, info, body.supersteps)
        except BaseException:
            # All or nothing: a refused superstep leaves no thread behind.
            await runner.saver.adelete_thread(thread_id)
            await runner.threads.delete(thread_id)
            raise
    if created and body.ttl is not None:
        await runner.threads.set_ttl(thread_id, body.ttl.strategy, body.ttl.ttl)
    return await _thread_json(runner, await runner.check_access(thread_id, context.user_id))


async def _apply_supersteps(
    runner: AgentRunner, info: ThreadInfo, supersteps: list[Superstep]
) -> None:
    """Write a new thread's state step by step, each update checked like `update_state`."""
    served = runner.graph_of(info)
    config = _config(info.thread_id)
    config["configurable"]["graph_id"] = served.graph_id
    for step in supersteps:
        if served.task_agent:
            source = await _state(served.graph, _config(info.thread_id))
            for update in step.updates:
                try:
                    check_task_agent_update(
                        update.values, update.as_node, source, runner.services.settings
                    )
                except RefusedUpdate as exc:
                    raise TurnError(exc.status, f"supersteps: {exc}") from None
        try:
            await served.graph.abulk_update_state(
                config, [[GraphUpdate(cast(Any, u.values), u.as_node) for u in step.updates]]
            )
        except InvalidUpdateError as exc:
            raise TurnError(400, f"supersteps do not fit the graph: {exc}") from None
    await _settle(runner, served.graph, info.thread_id)


async def _matching(
    runner: AgentRunner, owner: str, body: ThreadSearch | ThreadCount, wanted: int | None
) -> tuple[list[ThreadInfo], bool]:
    """The owner's threads that pass every filter, in order: the first `wanted` (None: all).

    Returns them and whether more match. A `values` filter reads each candidate's state, so
    it is refused when more than MAX_VALUES_SCAN threads pass the other filters.
    """
    search = body if isinstance(body, ThreadSearch) else None
    found = await runner.threads.search(
        owner,
        metadata=body.metadata,
        status=body.status,
        ids=search.ids if search else None,
        sort_by=search.sort_by if search else None,
        sort_order=search.sort_order if search else None,
        limit=None if body.values or wanted is None else wanted + 1,
        offset=0 if body.values or search is None else search.offset,
    )
    if body.values:
        if len(found) > MAX_VALUES_SCAN:
            raise TurnError(
                422,
                f"A values filter reads each thread's state and {len(found)} threads pass the"
                f" other filters (at most {MAX_VALUES_SCAN}); narrow it with metadata, status"
                " or ids.",
            )
        found = [info for info in found if await _values_match(runner, info, body.values)]
        if search is not None:
            found = found[search.offset :]
    if wanted is None:
        return found, False
    return found[:wanted], len(found) > wanted


async def _values_match(runner: AgentRunner, info: ThreadInfo, wanted: dict[str, Any]) -> bool:
    if runner.graphs.find(_graph_id(info)) is None:
        return False
    snapshot = await _state(_graph(runner, info), _config(info.thread_id))
    return snapshot.created_at is not None and json_contains(jsonable(snapshot.values), wanted)


@router.post("/threads/search")
async def search_threads(body: ThreadSearch, context: Ctx, runner: Runner) -> JSONResponse:
    """Find the user's threads by metadata, values, status and ids; sorted and paged."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata, values=body.values)
    if body.extract:
        raise TurnError(422, "extract is not supported; select fields or read thread state.")
    page, more = await _matching(runner, context.user_id, body, body.limit)
    shown = [await _thread_json(runner, info, select=body.select) for info in page]
    # As langgraph-api pages: the total so far, and the next offset while more remain.
    end = body.offset + len(page)
    headers = (
        {"X-Pagination-Total": str(end + 1), "X-Pagination-Next": str(end)}
        if more
        else {"X-Pagination-Total": str(end)}
    )
    return JSONResponse(shown, headers=headers)


@router.post("/threads/count")
async def count_threads(body: ThreadCount, context: Ctx, runner: Runner) -> int:
    """Count the user's threads matching metadata, values and status."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata, values=body.values)
    if not body.values:
        return await runner.threads.count(
            context.user_id, metadata=body.metadata, status=body.status
        )
    found, _ = await _matching(runner, context.user_id, body, None)
    return len(found)


@router.post("/threads/prune")
async def prune_threads(body: ThreadPrune, context: Ctx, runner: Runner, runs: Runs) -> Any:
    """Delete threads, or cut each to its latest state (`keep_latest`); count those pruned.

    Ids the user has no thread of are skipped, as are (for `keep_latest`) threads with a
    run in progress.
    """
    pruned = 0
    for thread_id in dict.fromkeys(body.thread_ids):
        info = await runner.threads.get(thread_id)
        if info is None or info.owner != context.user_id:
            continue
        if body.strategy == "delete":
            await runs.delete_thread(thread_id)
        elif not await keep_latest(runs, thread_id):
            continue
        pruned += 1
    return {"pruned_count": pruned}


@router.get("/threads/{thread_id}")
async def get_thread(
    thread_id: str,
    context: Ctx,
    runner: Runner,
    include: Annotated[str, Query(max_length=200)] = "",
) -> dict[str, Any]:
    """Return a thread with its current values and pending interrupts (`include=ttl`: TTL)."""
    info = await runner.check_access(thread_id, context.user_id)
    fields = {part.strip() for part in include.split(",") if part.strip()}
    return await _thread_json(runner, info, include_ttl="ttl" in fields)


@router.patch("/threads/{thread_id}", response_model=None)
async def patch_thread(
    thread_id: str,
    body: ThreadPatch,
    context: Ctx,
    runner: Runner,
    prefer: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any] | Response:
    """Merge metadata into a thread and set its TTL (`Prefer: return=minimal`: no body)."""
    settings = runner.services.settings
    refuse_oversized_json(settings, metadata=body.metadata)
    info = await runner.check_access(thread_id, context.user_id)
    try:
        check_json_size(merge_patch(info.metadata, body.metadata), "merged metadata", settings)
    except ValueError as exc:
        raise TurnError(422, str(exc)) from None
    limit = settings.max_metadata_bytes
    if not await runner.threads.update_metadata(thread_id, body.metadata, max_bytes=limit):
        await runner.check_access(thread_id, context.user_id)  # deleted meanwhile: 404
        raise TurnError(
            422, f"merged metadata would be over the limit of {limit} bytes; nothing was changed."
        )
    if body.ttl is not None:
        await runner.threads.set_ttl(thread_id, body.ttl.strategy, body.ttl.ttl)
    info = await runner.check_access(thread_id, context.user_id)
    if prefer == "return=minimal":
        return Response(status_code=204)
    return await _thread_json(runner, info)


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread_route(thread_id: str, context: Ctx, runner: Runner, runs: Runs) -> Response:
    """Delete a thread: its runs (cancelled if live), checkpoints, archive and index entry."""
    await runner.check_access(thread_id, context.user_id)
    await runs.delete_thread(thread_id)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/copy")
async def copy_thread(thread_id: str, context: Ctx, runner: Runner, runs: Runs) -> dict[str, Any]:
    """Copy a thread: a new thread of the caller's with the same checkpoints and metadata."""
    info = await runner.check_access(thread_id, context.user_id)
    copy_id = str(uuid.uuid4())
    await runs.create_thread(context, copy_id, info.metadata, title=info.title)
    try:
        await runner.saver.acopy_thread(thread_id, copy_id)
        archived = await runner.services.tasks.archived_messages(thread_id)
        if archived:
            await runner.services.tasks.archive_messages(
                copy_id, [(_message_id(doc, index), doc) for index, doc in enumerate(archived)]
            )
        if runner.graphs.find(_graph_id(info)) is not None:
            await _settle(runner, _graph(runner, info), copy_id)
    except BaseException:
        await runner.saver.adelete_thread(copy_id)
        await runner.services.tasks.delete_archive(copy_id)
        await runner.threads.delete(copy_id)
        raise
    return await _thread_json(runner, await runner.check_access(copy_id, context.user_id))


def _message_id(document: str, index: int) -> str:
    try:
        found = json.loads(document).get("data", {}).get("id")
    except (json.JSONDecodeError, AttributeError):
        found = None
    return str(found or f"archived-{index}")


# --- state -----------------------------------------------------------------------------------


@router.get("/threads/{thread_id}/state")
async def get_thread_state(
    thread_id: str, context: Ctx, runner: Runner, subgraphs: bool = False
) -> dict[str, Any]:
    """Return the thread's current state (`subgraphs`: with each subgraph task's state)."""
    info = await runner.check_access(thread_id, context.user_id)
    return state_json(await _state(_graph(runner, info), _config(thread_id), subgraphs=subgraphs))


async def _state_at(
    runner: AgentRunner,
    info: ThreadInfo,
    checkpoint: CheckpointConfig,
    subgraphs: bool,
) -> dict[str, Any]:
    snapshot = await _state(
        _graph(runner, info), _config(info.thread_id, checkpoint), subgraphs=subgraphs
    )
    if snapshot.config is None or not snapshot.created_at:
        raise TurnError(404, f"Checkpoint {checkpoint.checkpoint_id} not found (it may be pruned).")
    return state_json(snapshot)


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_thread_state_at(
    thread_id: str, checkpoint_id: str, context: Ctx, runner: Runner, subgraphs: bool = False
) -> dict[str, Any]:
    """Return the thread's state at a checkpoint of its root graph."""
    info = await runner.check_access(thread_id, context.user_id)
    return await _state_at(runner, info, CheckpointConfig(checkpoint_id=checkpoint_id), subgraphs)


@router.post("/threads/{thread_id}/state/checkpoint")
async def post_thread_state_at(
    thread_id: str, body: StateAtCheckpoint, context: Ctx, runner: Runner
) -> dict[str, Any]:
    """Return the thread's state at the checkpoint the body names (of a subgraph too)."""
    info = await runner.check_access(thread_id, context.user_id)
    return await _state_at(runner, info, body.checkpoint, body.subgraphs)


@router.post("/threads/{thread_id}/state")
async def update_thread_state(
    thread_id: str, body: StateUpdate, context: Ctx, runner: Runner, runs: Runs
) -> dict[str, Any]:
    """Write values into the thread's state as `as_node` would, or fork (`as_node="__copy__"`).

    Works on the latest checkpoint, or the one `checkpoint`/`checkpoint_id` names: the new
    checkpoint then branches from it. Refused while a run of the thread is in progress.
    On the task agent only messages are writable and its guards still see every tool call
    (see `server.runs.state_updates`).
    """
    info = await runner.check_access(thread_id, context.user_id)
    if await runs.active_runs(thread_id):
        raise TurnError(
            409, f"Thread {thread_id} has a run in progress; update its state once it ends."
        )
    if not info.metadata.get("graph_id"):
        # As langgraph dev: a write needs the graph whose nodes `as_node` names.
        raise TurnError(
            400,
            f"Thread {thread_id} has no graph yet: run it once, or set metadata.graph_id, "
            "before updating its state.",
        )
    served = runner.graph_of(info)
    graph = served.graph
    checkpoint = body.checkpoint or CheckpointConfig()
    if body.checkpoint_id:
        checkpoint = checkpoint.model_copy(update={"checkpoint_id": body.checkpoint_id})
    config = _config(thread_id, checkpoint)
    source = await _state(graph, config)
    # As langgraph-api does: the checkpoint's metadata names the graph that wrote it.
    config["configurable"]["graph_id"] = served.graph_id
    if checkpoint.checkpoint_id and source.created_at is None:
        raise TurnError(404, f"Checkpoint {checkpoint.checkpoint_id} not found (it may be pruned).")
    if body.as_node == "__copy__" and source.created_at is None:
        raise TurnError(409, f"Thread {thread_id} has no checkpoint to fork yet.")
    if served.task_agent:
        try:
            check_task_agent_update(body.values, body.as_node, source, runner.services.settings)
        except RefusedUpdate as exc:
            raise TurnError(exc.status, str(exc)) from None
    try:
        written = await graph.aupdate_state(config, body.values, as_node=body.as_node)
    except InvalidUpdateError as exc:
        raise TurnError(400, f"The update does not fit the graph: {exc}") from None
    await _settle(runner, graph, thread_id)
    configurable = jsonable(written["configurable"])
    return {
        "checkpoint": configurable,
        # Deprecated in the protocol, still read by older clients.
        "configurable": configurable,
        "checkpoint_id": configurable.get("checkpoint_id"),
    }


@router.post("/threads/{thread_id}/history")
async def get_thread_history(
    thread_id: str, body: HistoryQuery, context: Ctx, runner: Runner
) -> list[dict[str, Any]]:
    """Return the thread's checkpoints, newest first (of a subgraph: `checkpoint_ns`)."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    info = await runner.check_access(thread_id, context.user_id)
    for key in body.metadata or {}:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            raise TurnError(422, f"metadata filter keys are letters, digits, _ . - (got {key!r}).")
    return await _history(runner, info, body)


@router.get("/threads/{thread_id}/history")
async def get_thread_history_get(
    thread_id: str,
    context: Ctx,
    runner: Runner,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    """Return the thread's checkpoints, newest first (the query-string form)."""
    info = await runner.check_access(thread_id, context.user_id)
    return await _history(runner, info, HistoryQuery(limit=limit, before=before))


async def _history(
    runner: AgentRunner, info: ThreadInfo, query: HistoryQuery
) -> list[dict[str, Any]]:
    before: RunnableConfig | None = None
    if isinstance(query.before, str):
        before = {"configurable": {"checkpoint_id": query.before}}
    elif query.before is not None and query.before.checkpoint_id:
        before = {"configurable": {"checkpoint_id": query.before.checkpoint_id}}
    config = _config(info.thread_id, query.checkpoint)
    graph = _graph(runner, info)
    try:
        return [
            state_json(snapshot)
            async for snapshot in graph.aget_state_history(
                config, limit=query.limit, before=before, filter=query.metadata
            )
        ]
    except ValueError:
        namespace = config["configurable"].get("checkpoint_ns")
        raise TurnError(404, f"No subgraph of this thread's graph at {namespace!r}.") from None
