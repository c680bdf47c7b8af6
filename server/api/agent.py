"""The LangGraph Agent Server protocol: the routes the stock `langgraph-sdk` calls."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python
from sse_starlette import EventSourceResponse

from graph.context import TIER_NAMES, Context, TierName
from server.api.deps import context_of, runner_of, runs_of
from server.api.sse import event_stream, last_event_id
from server.runs.client_input import RefusedInput, check_run_request
from server.runs.engine import RunManager
from server.runs.projections import stream_modes
from server.runs.runner import AgentRunner, TurnError
from server.runs.store import MultitaskStrategy, RunRecord
from server.runs.threads import ThreadInfo
from server.security.limits import (
    MAX_OFFSET,
    LastEventId,
    check_json_size,
    merge_patch,
    refuse_oversized_json,
)

router = APIRouter(tags=["agent protocol"])

GRAPH_ID = "agent"
ASSISTANT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "taskagent/assistants/agent"))
CREATED = "2026-01-01T00:00:00+00:00"
VERSION = "0.1.0"

Runner = Annotated[AgentRunner, Depends(runner_of)]
Runs = Annotated[RunManager, Depends(runs_of)]
Ctx = Annotated[Context, Depends(context_of)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


# --- assistants ------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """Plain JSON types, the way the stock Agent Server writes graph values; unknowns as text."""
    return to_jsonable_python(value, fallback=str)


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


def _check_assistant(assistant_id: str) -> None:
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
    _check_assistant(assistant_id)
    return _assistant()


@router.get("/assistants/{assistant_id}/graph")
async def get_assistant_graph(assistant_id: str, runner: Runner, context: Ctx) -> dict[str, Any]:
    """Return the graph's nodes and edges."""
    _check_assistant(assistant_id)
    return _json(runner.graph.get_graph().to_json())  # type: ignore[no-any-return]


@router.get("/assistants/{assistant_id}/schemas")
async def get_assistant_schemas(assistant_id: str, runner: Runner, context: Ctx) -> dict[str, Any]:
    """Return the graph's input, output, state and context JSON schemas."""
    _check_assistant(assistant_id)
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
    _check_assistant(assistant_id)
    return {}


# --- threads ---------------------------------------------------------------------------------


class ThreadCreate(BaseModel):
    """Create a thread, optionally with a chosen id."""

    model_config = ConfigDict(extra="ignore")
    thread_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadPatch(BaseModel):
    """Change a thread's metadata."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ThreadSearch(BaseModel):
    """Filter threads."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


async def _thread_json(
    runner: AgentRunner, info: ThreadInfo, with_values: bool = True
) -> dict[str, Any]:
    snapshot = await runner.graph.aget_state({"configurable": {"thread_id": info.thread_id}})
    interrupts: dict[str, list[Any]] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            interrupts[task.id] = _json(list(task.interrupts))
    return {
        "thread_id": info.thread_id,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "metadata": info.metadata,
        "status": info.status,
        "config": {},
        "values": _json(snapshot.values) if with_values else None,
        "interrupts": interrupts,
    }


@router.post("/threads")
async def create_thread(
    body: ThreadCreate, context: Ctx, runner: Runner, runs: Runs
) -> dict[str, Any]:
    """Create a thread (a client may choose its id; `if_exists` says what a clash does)."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    thread_id = body.thread_id or str(uuid.uuid4())
    info, created = await runs.create_thread(context, thread_id, body.metadata)
    if not created and (body.if_exists == "raise" or info.owner != context.user_id):
        raise TurnError(409, f"Thread {thread_id} already exists.")
    return await _thread_json(runner, info)


@router.post("/threads/search")
async def search_threads(body: ThreadSearch, context: Ctx, runner: Runner) -> list[dict[str, Any]]:
    """Find the user's threads by metadata and status."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    found = await runner.threads.search(
        context.user_id,
        metadata=body.metadata,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
    )
    return [await _thread_json(runner, info) for info in found]


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, context: Ctx, runner: Runner) -> dict[str, Any]:
    """Return a thread with its current values and pending interrupts."""
    return await _thread_json(runner, await runner.check_access(thread_id, context.user_id))


@router.patch("/threads/{thread_id}")
async def patch_thread(
    thread_id: str, body: ThreadPatch, context: Ctx, runner: Runner
) -> dict[str, Any]:
    """Merge metadata into a thread."""
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
    return await _thread_json(runner, await runner.check_access(thread_id, context.user_id))


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, context: Ctx, runner: Runner, runs: Runs) -> Response:
    """Delete a thread: its runs (cancelled if live), checkpoints, archive and index entry."""
    await runner.check_access(thread_id, context.user_id)
    for run_id in await runs.active_runs(thread_id):
        await runs.cancel(run_id)
    await runs.store.delete_thread(thread_id)
    await runner.saver.adelete_thread(thread_id)
    await runner.services.tasks.delete_archive(thread_id)
    await runner.threads.delete(thread_id)
    return Response(status_code=204)


def _checkpoint(config: RunnableConfig | None) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config.get("configurable", {})
    return {
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


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


def state_json(snapshot: StateSnapshot) -> dict[str, Any]:
    """Return a StateSnapshot the way the Agent Server shows a thread state."""
    return {
        "values": _json(snapshot.values),
        "next": list(snapshot.next),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "error": error_name(task.error),
                "interrupts": _json(list(task.interrupts)),
                "checkpoint": None,
                "state": None,
                "result": _json(task.result),
            }
            for task in snapshot.tasks
        ],
        "checkpoint": _checkpoint(snapshot.config),
        "metadata": _json(snapshot.metadata),
        "created_at": snapshot.created_at,
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "interrupts": _json(list(snapshot.interrupts)),
    }


@router.get("/threads/{thread_id}/state")
async def get_thread_state(thread_id: str, context: Ctx, runner: Runner) -> dict[str, Any]:
    """Return the thread's current state."""
    await runner.check_access(thread_id, context.user_id)
    return state_json(await runner.graph.aget_state({"configurable": {"thread_id": thread_id}}))


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_thread_state_at(
    thread_id: str, checkpoint_id: str, context: Ctx, runner: Runner
) -> dict[str, Any]:
    """Return the thread's state at a checkpoint."""
    await runner.check_access(thread_id, context.user_id)
    config: RunnableConfig = {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": "",
            "checkpoint_id": checkpoint_id,
        }
    }
    snapshot = await runner.graph.aget_state(config)
    if snapshot.config is None or not snapshot.created_at:
        raise TurnError(404, f"Checkpoint {checkpoint_id} not found (it may be pruned).")
    return state_json(snapshot)


class HistoryQuery(BaseModel):
    """Which checkpoints of a thread to list."""

    model_config = ConfigDict(extra="ignore")
    limit: int = Field(default=10, ge=1, le=1000)
    before: dict[str, Any] | str | None = None
    metadata: dict[str, Any] | None = None


@router.post("/threads/{thread_id}/history")
async def get_thread_history(
    thread_id: str, body: HistoryQuery, context: Ctx, runner: Runner
) -> list[dict[str, Any]]:
    """Return the thread's checkpoints, newest first (history is bounded; see README)."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    await runner.check_access(thread_id, context.user_id)
    for key in body.metadata or {}:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            raise TurnError(422, f"metadata filter keys are letters, digits, _ . - (got {key!r}).")
    before: RunnableConfig | None = None
    if isinstance(body.before, str):
        before = {"configurable": {"checkpoint_id": body.before}}
    elif isinstance(body.before, dict) and body.before.get("checkpoint_id"):
        before = {"configurable": {"checkpoint_id": body.before["checkpoint_id"]}}
    return [
        state_json(snapshot)
        async for snapshot in runner.graph.aget_state_history(
            {"configurable": {"thread_id": thread_id}},
            limit=body.limit,
            before=before,
            filter=body.metadata,
        )
    ]


# --- runs ------------------------------------------------------------------------------------


class RunCreate(BaseModel):
    """A run request as the SDK sends it."""

    model_config = ConfigDict(extra="ignore")
    assistant_id: str = GRAPH_ID
    input: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    stream_mode: str | list[str] = "values"
    metadata: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    if_not_exists: Literal["create", "reject"] = "reject"
    stream_resumable: bool = False


def run_json(run: RunRecord) -> dict[str, Any]:
    """Return a run the way the Agent Server shows it."""
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": ASSISTANT_ID,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "status": run.status,
        "metadata": run.metadata,
        "multitask_strategy": run.multitask_strategy,
        "kwargs": {"input": run.payload.get("input"), "command": run.payload.get("command")},
    }


def _run_context(base: Context, body: RunCreate) -> Context:
    tier = (body.context or {}).get("model_tier")
    if tier is not None and tier not in TIER_NAMES:
        raise TurnError(422, "context.model_tier must be one of ollama, openai or offline.")
    return Context(
        user_id=base.user_id,
        role=base.role,
        request_id=base.request_id,
        model_tier=cast(TierName | None, tier),
    )


async def _create_run(
    thread_id: str | None,
    body: RunCreate,
    context: Context,
    runner: AgentRunner,
    runs: RunManager,
    idempotency_key: str | None = None,
) -> RunRecord:
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    _check_assistant(body.assistant_id)
    stream_modes(body.stream_mode)
    if body.input is None and body.command is None:
        raise TurnError(422, "A run needs input or command (e.g. command={'resume': ...}).")
    try:
        # Before anything is created: a refused input leaves no run and no thread behind.
        check_run_request(body.input, body.command, runner.services.settings)
    except RefusedInput as exc:
        raise TurnError(422, str(exc)) from None
    if thread_id is not None and body.if_not_exists == "create":
        # Another user's thread of that id stays theirs: admission answers 404 for it.
        await runs.create_thread(context, thread_id)
    payload = {"input": body.input, "command": body.command, "stream_mode": body.stream_mode}
    return await runs.create(
        context=_run_context(context, body),
        thread_id=thread_id,
        kind="agent",
        payload=payload,
        strategy=body.multitask_strategy,
        metadata=body.metadata,
        assistant_id=ASSISTANT_ID,
        idempotency_key=idempotency_key,
    )


def _stream(
    run: RunRecord, runs: RunManager, after: int, cancel_on_disconnect: bool
) -> EventSourceResponse:
    base = f"/threads/{run.thread_id}/runs/{run.run_id}"

    async def cancel() -> None:
        await runs.cancel(run.run_id)

    return event_stream(
        runs.events(run.run_id, after),
        ping_s=runs.settings.sse_ping_s,
        location=f"{base}/stream",
        run_location=base,
        on_disconnect=cancel if cancel_on_disconnect else None,
    )


@router.post("/threads/{thread_id}/runs/stream", response_class=EventSourceResponse)
async def stream_run(
    thread_id: str,
    body: RunCreate,
    context: Ctx,
    runner: Runner,
    runs: Runs,
    idempotency_key: IdempotencyKey = None,
) -> EventSourceResponse:
    """Create a run on the thread and stream its events."""
    run = await _create_run(thread_id, body, context, runner, runs, idempotency_key)
    return _stream(run, runs, 0, body.on_disconnect == "cancel")


@router.post("/runs/stream", response_class=EventSourceResponse)
async def stream_stateless_run(
    body: RunCreate, context: Ctx, runner: Runner, runs: Runs
) -> EventSourceResponse:
    """Create a run on a new thread and stream its events."""
    run = await _create_run(None, body, context, runner, runs)
    return _stream(run, runs, 0, body.on_disconnect == "cancel")


@router.post("/threads/{thread_id}/runs")
async def create_run(
    thread_id: str,
    body: RunCreate,
    context: Ctx,
    runner: Runner,
    runs: Runs,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a background run on the thread."""
    run = await _create_run(thread_id, body, context, runner, runs, idempotency_key)
    location = f"/threads/{thread_id}/runs/{run.run_id}"
    return JSONResponse(
        run_json(run), headers={"Content-Location": location, "Location": f"{location}/stream"}
    )


async def _final_values(runner: AgentRunner, runs: RunManager, run: RunRecord) -> dict[str, Any]:
    finished = await runs.wait(run.run_id)
    if finished.status == "error":
        return {"__error__": {"error": finished.error or "Error", "message": "The run failed."}}
    snapshot = await runner.graph.aget_state({"configurable": {"thread_id": run.thread_id}})
    values = _json(snapshot.values)
    if snapshot.interrupts:
        values["__interrupt__"] = _json(list(snapshot.interrupts))
    return values  # type: ignore[no-any-return]


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(
    thread_id: str,
    body: RunCreate,
    context: Ctx,
    runner: Runner,
    runs: Runs,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a run on the thread, wait for it and return the thread's final values."""
    run = await _create_run(thread_id, body, context, runner, runs, idempotency_key)
    location = f"/threads/{thread_id}/runs/{run.run_id}"
    return JSONResponse(
        await _final_values(runner, runs, run),
        headers={"Content-Location": location, "Location": f"{location}/join"},
    )


async def _own_run(thread_id: str, run_id: str, context: Context, runs: RunManager) -> RunRecord:
    run = await runs.store.get(run_id)
    if run is None or run.thread_id != thread_id or run.owner != context.user_id:
        raise TurnError(404, f"Run {run_id} not found on thread {thread_id}.")
    return run


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str,
    context: Ctx,
    runner: Runner,
    runs: Runs,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """List the thread's runs, newest first."""
    await runner.check_access(thread_id, context.user_id)
    found = await runs.store.for_thread(thread_id, limit=limit, offset=offset, status=status)
    return [run_json(run) for run in found]


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, context: Ctx, runs: Runs) -> dict[str, Any]:
    """Return a run."""
    return run_json(await _own_run(thread_id, run_id, context, runs))


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    thread_id: str, run_id: str, context: Ctx, runner: Runner, runs: Runs
) -> dict[str, Any]:
    """Wait for a run to finish and return the thread's final values."""
    run = await _own_run(thread_id, run_id, context, runs)
    return await _final_values(runner, runs, run)


@router.get("/threads/{thread_id}/runs/{run_id}/stream", response_class=EventSourceResponse)
async def join_run_stream(
    thread_id: str,
    run_id: str,
    context: Ctx,
    runs: Runs,
    last_event: LastEventId = None,
    cancel_on_disconnect: bool = False,
) -> EventSourceResponse:
    """Replay a run's events after `Last-Event-ID`, then follow it live to its end."""
    run = await _own_run(thread_id, run_id, context, runs)
    return _stream(run, runs, last_event_id(last_event), cancel_on_disconnect)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str,
    run_id: str,
    context: Ctx,
    runs: Runs,
    action: Literal["interrupt", "rollback"] = "interrupt",
    wait: bool = False,
) -> Response:
    """Cancel a pending or running run (`rollback` also undoes what it wrote)."""
    run = await _own_run(thread_id, run_id, context, runs)
    if not await runs.is_live(run.run_id):
        raise TurnError(
            409, f"Run {run_id} is {run.status}; only pending or running runs can be cancelled."
        )
    await runs.cancel(run_id, action=action)
    return Response(status_code=204 if wait else 202)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, context: Ctx, runs: Runs) -> Response:
    """Delete a finished run and its event log."""
    run = await _own_run(thread_id, run_id, context, runs)
    if await runs.is_live(run.run_id):
        raise TurnError(409, f"Run {run_id} is still {run.status}; cancel it first.")
    await runs.store.delete(run_id)
    return Response(status_code=204)


# --- server ----------------------------------------------------------------------------------


@router.get("/ok")
async def ok() -> dict[str, bool]:
    """Liveness, as the Agent Server answers it."""
    return {"ok": True}


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    """Describe the server and what it supports."""
    return {
        "version": VERSION,
        "langgraph_py_version": _version("langgraph"),
        "flags": {"assistants": True, "crons": False, "langsmith": False, "thread_ttl": False},
        "metadata": {"stream_modes": ["values", "updates", "messages-tuple", "custom"]},
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
