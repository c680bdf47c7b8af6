"""Threads: create, find, read and delete them, and their state and history."""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Response
from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot
from pydantic import BaseModel, ConfigDict, Field

from server.api.protocol.common import (
    Ctx,
    Runner,
    Runs,
    jsonable,
)
from server.runs.runner import AgentRunner, TurnError
from server.runs.threads import ThreadInfo
from server.security.limits import (
    MAX_OFFSET,
    check_json_size,
    merge_patch,
    refuse_oversized_json,
)

router = APIRouter(tags=["agent protocol"])


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
    snapshot = await runner.graph_of(info).graph.aget_state(
        {"configurable": {"thread_id": info.thread_id}}
    )
    interrupts: dict[str, list[Any]] = {}
    for task in snapshot.tasks:
        if task.interrupts:
            interrupts[task.id] = jsonable(list(task.interrupts))
    return {
        "thread_id": info.thread_id,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "metadata": info.metadata,
        "status": info.status,
        "config": {},
        "values": jsonable(snapshot.values) if with_values else None,
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
    await runs.delete_thread(thread_id)
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
        "values": jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "error": error_name(task.error),
                "interrupts": jsonable(list(task.interrupts)),
                "checkpoint": None,
                "state": None,
                "result": jsonable(task.result),
            }
            for task in snapshot.tasks
        ],
        "checkpoint": _checkpoint(snapshot.config),
        "metadata": jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "parent_checkpoint": _checkpoint(snapshot.parent_config),
        "interrupts": jsonable(list(snapshot.interrupts)),
    }


@router.get("/threads/{thread_id}/state")
async def get_thread_state(thread_id: str, context: Ctx, runner: Runner) -> dict[str, Any]:
    """Return the thread's current state."""
    await runner.check_access(thread_id, context.user_id)
    return state_json(await runner.state(thread_id))


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_thread_state_at(
    thread_id: str, checkpoint_id: str, context: Ctx, runner: Runner
) -> dict[str, Any]:
    """Return the thread's state at a checkpoint."""
    await runner.check_access(thread_id, context.user_id)
    snapshot = await runner.state(thread_id, checkpoint_id)
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
    info = await runner.check_access(thread_id, context.user_id)
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
        async for snapshot in runner.graph_of(info).graph.aget_state_history(
            {"configurable": {"thread_id": thread_id}},
            limit=body.limit,
            before=before,
            filter=body.metadata,
        )
    ]
