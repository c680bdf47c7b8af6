"""Runs on a thread or on a new one: create, stream, wait, join, cancel, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from graph.context import TIER_NAMES, Context, TierName
from server.api.protocol.assistants import check_assistant
from server.api.protocol.common import (
    ASSISTANT_ID,
    GRAPH_ID,
    Ctx,
    IdempotencyKey,
    Runner,
    Runs,
    jsonable,
)
from server.api.sse import event_stream, last_event_id
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
    check_assistant(body.assistant_id)
    stream_modes(body.stream_mode)
    if body.input is None and body.command is None and thread_id is None:
        raise TurnError(422, "A run needs input or command (e.g. command={'resume': ...}).")
    try:
        # Before anything is created: a refused input leaves no run and no thread behind.
        if body.input is not None or body.command is not None:
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
