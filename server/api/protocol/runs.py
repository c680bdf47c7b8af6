"""Runs on a thread or on a new one: create, stream, wait, join, cancel, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from graph.context import TIER_NAMES, Context, TierName
from server.api.protocol.common import (
    GRAPH_ID,
    Ctx,
    IdempotencyKey,
    Runner,
    Runs,
    jsonable,
)
from server.api.sse import event_stream, last_event_id
from server.runs.assistants import ResolvedAssistant
from server.runs.client_input import RefusedInput, check_run_request
from server.runs.engine import RunManager
from server.runs.projections import stream_modes
from server.runs.runner import AgentRunner, TurnError
from server.runs.store import MultitaskStrategy, RunRecord
from server.security.limits import (
    MAX_OFFSET,
    LastEventId,
    refuse_oversized_json,
)

router = APIRouter(tags=["agent protocol"])


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
    config: dict[str, Any] | None = None
    # Branch from (or re-run) a past checkpoint of the thread.
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = Field(default=None, max_length=200)
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_subgraphs: bool = False
    # Thread-less runs: whether their thread is kept once they end.
    on_completion: Literal["delete", "keep"] | None = None


def run_json(run: RunRecord) -> dict[str, Any]:
    """Return a run the way the Agent Server shows it."""
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "status": run.status,
        "metadata": run.metadata,
        "multitask_strategy": run.multitask_strategy,
        "kwargs": _run_kwargs(run),
    }


def _run_kwargs(run: RunRecord) -> dict[str, Any]:
    """What the run was asked to do, under the keys langgraph dev shows."""
    payload = run.payload
    modes = payload.get("stream_mode") or "values"
    config = dict(payload.get("config") or {})
    # The ids the server adds to every run's config, where dev shows them.
    config["configurable"] = {
        **(payload.get("context") or {}),  # dev keeps context and configurable equal
        **(config.get("configurable") or {}),
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "graph_id": payload.get("graph_id"),
        "assistant_id": run.assistant_id,
        "user_id": run.owner,
        **({"checkpoint_id": payload["checkpoint_id"]} if payload.get("checkpoint_id") else {}),
    }
    config["metadata"] = run.metadata
    return {
        "input": payload.get("input"),
        "command": payload.get("command"),
        "config": config,
        "context": payload.get("context") or {},
        "stream_mode": [modes] if isinstance(modes, str) else list(modes),
        "interrupt_before": payload.get("interrupt_before"),
        "interrupt_after": payload.get("interrupt_after"),
        "webhook": None,
        "feedback_keys": None,
        "temporary": payload.get("on_completion") == "delete",
        "subgraphs": bool(payload.get("stream_subgraphs")),
        "resumable": False,
        "checkpoint_during": True,
        "durability": "async",
    }


def _run_context(base: Context, given: dict[str, Any]) -> Context:
    tier = given.get("model_tier")
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
    settings = runner.services.settings
    refuse_oversized_json(
        settings, metadata=body.metadata, config=body.config or {}, context=body.context or {}
    )
    assistant = await runs.assistants.resolve(body.assistant_id, context.user_id)
    served = runner.graphs.get(assistant.graph_id)
    stream_modes(body.stream_mode)
    checkpoint_id = body.checkpoint_id or (body.checkpoint or {}).get("checkpoint_id")
    if thread_id is None and checkpoint_id is not None:
        raise TurnError(422, "A checkpoint belongs to a thread; give the run a thread_id.")
    if body.input is None and body.command is None and thread_id is None:
        # On a thread, no input continues it from its latest (or the given) checkpoint.
        raise TurnError(422, "A run needs input or command (e.g. command={'resume': ...}).")
    # A node name the graph lacks never matches, as in langgraph dev (clients send one list
    # to assistants of several graphs); LangGraph itself ignores it.
    if served.task_agent:
        try:
            # Before anything is created: a refused input leaves no run and no thread behind.
            if body.input is not None or body.command is not None:
                check_run_request(body.input, body.command, settings)
        except RefusedInput as exc:
            raise TurnError(422, str(exc)) from None
    elif body.command is not None and body.command.keys() - {"resume", "update", "goto"}:
        raise TurnError(422, "command may hold resume, update and goto.")
    if thread_id is not None and body.if_not_exists == "create":
        # Another user's thread of that id stays theirs: admission answers 404 for it.
        await runs.create_thread(context, thread_id)
    payload = {
        "input": body.input,
        "command": body.command,
        "stream_mode": body.stream_mode,
        "graph_id": served.graph_id,
        # The assistant's config and context, under the run's own (the run's keys win).
        "config": _merged(assistant.config, body.config or {}),
        "context": {} if served.task_agent else {**assistant.context, **(body.context or {})},
        "checkpoint_id": checkpoint_id,
        "interrupt_before": body.interrupt_before,
        "interrupt_after": body.interrupt_after,
        "stream_subgraphs": body.stream_subgraphs,
        "on_completion": body.on_completion,
    }
    return await runs.create(
        context=(
            _run_context(context, {**assistant.context, **(body.context or {})})
            if served.task_agent
            else context
        ),
        thread_id=thread_id,
        kind="agent",
        payload={key: value for key, value in payload.items() if value not in (None, {}, False)},
        strategy=body.multitask_strategy,
        metadata=await _run_metadata(runner, context, thread_id, assistant, body.metadata),
        assistant_id=assistant.assistant_id,
        idempotency_key=idempotency_key,
    )


async def _run_metadata(
    runner: AgentRunner,
    context: Context,
    thread_id: str | None,
    assistant: ResolvedAssistant,
    given: dict[str, Any] | None,
) -> dict[str, Any]:
    """The run's metadata as langgraph dev composes it.

    The assistant's, the thread's, the graph and assistant ids, then the run's own.
    """
    info = await runner.threads.get(thread_id) if thread_id is not None else None
    thread_metadata = info.metadata if info is not None and info.owner == context.user_id else {}
    # A thread's metadata names its graph (dev: a thread-less run's does not).
    on_thread = {"graph_id": assistant.graph_id} if thread_id is not None else {}
    return {
        **assistant.metadata,
        **thread_metadata,
        **on_thread,
        "assistant_id": assistant.assistant_id,
        **(given or {}),
    }


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, one level into `configurable`."""
    merged = {**base, **override}
    if isinstance(base.get("configurable"), dict) or isinstance(override.get("configurable"), dict):
        merged["configurable"] = {
            **(base.get("configurable") or {}),
            **(override.get("configurable") or {}),
        }
    return merged


def _join_headers(run: RunRecord) -> dict[str, str]:
    """Where a waited-for run and its result live, as langgraph dev names them."""
    base = f"/threads/{run.thread_id}/runs/{run.run_id}"
    return {"Content-Location": base, "Location": f"{base}/join"}


def _stream(
    run: RunRecord, runs: RunManager, after: int, cancel_on_disconnect: bool
) -> EventSourceResponse:
    base = f"/threads/{run.thread_id}/runs/{run.run_id}"
    if run.payload.get("on_completion") == "delete":
        # A thread-less run is named without its thread, which goes when the run ends
        # (so the SDK does not look for the run on a deleted thread after the stream).
        base = f"/runs/{run.run_id}"

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
    run = await _create_run(None, _stateless(body), context, runner, runs)
    return _stream(run, runs, 0, body.on_disconnect == "cancel")


def _stateless(body: RunCreate, *, wait: bool = False) -> RunCreate:
    """A thread-less run's thread is deleted when it ends unless `on_completion="keep"`."""
    update: dict[str, Any] = {"on_completion": body.on_completion or "delete"}
    if wait:
        # Its result is read from the run's log: the thread may be gone by then.
        update["stream_mode"] = "values"
    return body.model_copy(update=update)


@router.post("/runs")
async def create_stateless_run(
    body: RunCreate, context: Ctx, runner: Runner, runs: Runs
) -> JSONResponse:
    """Create a background run on a new thread."""
    run = await _create_run(None, _stateless(body), context, runner, runs)
    return JSONResponse(run_json(run), headers={"Content-Location": f"/runs/{run.run_id}"})


@router.post("/runs/wait")
async def wait_stateless_run(
    body: RunCreate, context: Ctx, runner: Runner, runs: Runs
) -> JSONResponse:
    """Create a run on a new thread, wait for it and return its final values."""
    run = await _create_run(None, _stateless(body, wait=True), context, runner, runs)
    return JSONResponse(await _final_values(runner, runs, run), headers=_join_headers(run))


MAX_BATCH = 100


@router.post("/runs/batch")
async def create_run_batch(
    body: list[RunCreate], context: Ctx, runner: Runner, runs: Runs
) -> list[dict[str, Any]]:
    """Create several background runs, each on a new thread."""
    if not 1 <= len(body) <= MAX_BATCH:
        raise TurnError(422, f"A batch holds 1 to {MAX_BATCH} runs (got {len(body)}).")
    return [
        run_json(await _create_run(None, _stateless(item), context, runner, runs)) for item in body
    ]


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
    return JSONResponse(run_json(run), headers={"Content-Location": location})


async def _final_values(runner: AgentRunner, runs: RunManager, run: RunRecord) -> dict[str, Any]:
    finished = await runs.wait(run.run_id)
    if finished.status == "error":
        return {"__error__": {"error": finished.error or "Error", "message": "The run failed."}}
    if run.payload.get("on_completion") == "delete":
        # A thread-less run's thread goes when it ends: its result is the last values it logged.
        logged = [e for e in await runs.store.events_after(run.run_id, 0) if e.event == "values"]
        return json.loads(logged[-1].data) if logged else {}
    snapshot = await runner.state(run.thread_id)
    values = jsonable(snapshot.values)
    if snapshot.interrupts:
        values["__interrupt__"] = jsonable(list(snapshot.interrupts))
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
    return JSONResponse(await _final_values(runner, runs, run), headers=_join_headers(run))


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
) -> JSONResponse:
    """Wait for a run to finish and return the thread's final values."""
    run = await _own_run(thread_id, run_id, context, runs)
    return JSONResponse(await _final_values(runner, runs, run), headers=_join_headers(run))


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
    runner: Runner,
    action: Literal["interrupt", "rollback"] = "interrupt",
    wait: bool = False,
) -> Response:
    """Cancel a pending or running run (`rollback` also undoes what it wrote).

    With `wait` the answer is the thread's values once the run has stopped, as `join`
    gives them (langgraph dev answers both this way).
    """
    run = await _own_run(thread_id, run_id, context, runs)
    if not await runs.cancel(run_id, action=action):
        raise TurnError(
            404, f"Run {run_id} has already ended ({run.status}); there is nothing to cancel."
        )
    if not wait:
        return Response(status_code=202)
    return JSONResponse(await _final_values(runner, runs, run), headers=_join_headers(run))


class RunsCancel(BaseModel):
    """Which runs `POST /runs/cancel` stops: by thread and ids, by status, or by assistant."""

    model_config = ConfigDict(extra="forbid")

    thread_id: str | None = None
    run_ids: list[str] | None = Field(default=None, max_length=MAX_BATCH)
    status: Literal["pending", "running", "all"] | None = None
    assistant_id: str | None = None


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(
    body: RunsCancel,
    context: Ctx,
    runs: Runs,
    action: Literal["interrupt", "rollback"] = "interrupt",
) -> Response:
    """Cancel several of the caller's runs at once (the three selections langgraph dev takes)."""
    user = context.user_id
    if body.assistant_id is not None:
        if body.thread_id or body.run_ids or body.status:
            raise TurnError(422, "With assistant_id, give no thread_id, run_ids or status.")
        targets = await runs.store.live_on_assistant(body.assistant_id, user)
    elif body.status is not None:
        if body.thread_id or body.run_ids:
            raise TurnError(422, "With status, give no thread_id or run_ids.")
        wanted = ("pending", "running") if body.status == "all" else (body.status,)
        unfinished = await runs.store.unfinished()
        targets = [r.run_id for r in unfinished if r.owner == user and r.status in wanted]
    elif body.thread_id and body.run_ids:
        found = [await runs.store.get(run_id) for run_id in body.run_ids]
        targets = [
            run.run_id
            for run in found
            if run is not None and run.thread_id == body.thread_id and run.owner == user
            if run.status in ("pending", "running")
        ]
    else:
        raise TurnError(422, "Give a status, an assistant_id, or both thread_id and run_ids.")
    if not targets and body.assistant_id is None:
        raise TurnError(404, "No matching runs to cancel (they may have ended or not exist).")
    for run_id in targets:
        await runs.cancel(run_id, action=action)
    return Response(status_code=204)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, context: Ctx, runs: Runs) -> Response:
    """Delete a finished run and its event log."""
    run = await _own_run(thread_id, run_id, context, runs)
    if await runs.is_live(run.run_id):
        raise TurnError(409, f"Run {run_id} is still {run.status}; cancel it first.")
    await runs.store.delete(run_id)
    return Response(status_code=204)
