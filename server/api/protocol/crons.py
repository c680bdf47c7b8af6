"""Crons: runs on a schedule, for a thread or each on a new thread; create, search, patch, delete.

Each firing is an ordinary run created through `runs._create_run` with the cron's stored
request and its creator's identity (server/runs/crons.py schedules and claims them).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from graph.context import Context
from graph.settings import Settings
from server.api.protocol.common import Ctx, Runner, Runs
from server.api.protocol.runs import RunCreate, _create_run
from server.runs.assistants import ResolvedAssistant
from server.runs.client_input import RefusedInput, check_run_request
from server.runs.crons import (
    CronLimitReached,
    CronRecord,
    CronScheduler,
    CronStore,
    OnRunCompleted,
    check_schedule,
    check_timezone,
    iso,
    new_cron,
    next_slot,
    stamp_now,
)
from server.runs.engine import RunManager
from server.runs.projections import stream_modes
from server.runs.runner import AgentRunner, TurnError
from server.runs.store import MultitaskStrategy, RunRecord
from server.security.limits import MAX_OFFSET, refuse_oversized_json

router = APIRouter(tags=["crons"])

CRON_FIELDS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
)
CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
]
# What a cron's stored run request may hold: the fields of a run request.
RUN_FIELDS = (
    "input",
    "metadata",
    "config",
    "context",
    "interrupt_before",
    "interrupt_after",
    "multitask_strategy",
    "stream_mode",
    "stream_subgraphs",
    "stream_resumable",
    "durability",
)
Schedule = Annotated[str, Field(min_length=1, max_length=200)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64)]


class _RunRequest(BaseModel):
    """The run each firing creates, as a run request carries it."""

    model_config = ConfigDict(extra="ignore")
    input: dict[str, Any] | list[Any] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: str | list[str] | None = None
    interrupt_after: str | list[str] | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None


class CronCreate(_RunRequest):
    """A cron as the SDK creates it (`client.crons.create` / `create_for_thread`)."""

    assistant_id: str = Field(min_length=1, max_length=200)
    schedule: Schedule
    timezone: TimeZone | None = None
    end_time: datetime | None = None
    enabled: bool = True
    on_run_completed: OnRunCompleted | None = None
    multitask_strategy: MultitaskStrategy | None = None


class CronPatch(_RunRequest):
    """What `client.crons.update` may change; an explicit `end_time: null` clears the end."""

    schedule: Schedule | None = None
    timezone: TimeZone | None = None
    end_time: datetime | None = None
    enabled: bool | None = None
    on_run_completed: OnRunCompleted | None = None


class CronSearch(BaseModel):
    """Filter, sort and page the caller's crons."""

    model_config = ConfigDict(extra="ignore")
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: StrictInt = Field(default=10, ge=1, le=1000)
    offset: StrictInt = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: (
        Literal[
            "cron_id",
            "assistant_id",
            "thread_id",
            "next_run_date",
            "end_time",
            "created_at",
            "updated_at",
        ]
        | None
    ) = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[CronField] | None = None


class CronCount(BaseModel):
    """Count the caller's crons."""

    model_config = ConfigDict(extra="ignore")
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


def crons_of(request: Request) -> CronScheduler:
    """The process's cron scheduler (and through it, the crons table)."""
    scheduler: CronScheduler = request.app.state.crons
    return scheduler


Crons = Annotated[CronScheduler, Depends(crons_of)]


def _payload_json(cron: CronRecord) -> dict[str, Any]:
    """What each run of the cron is created with, as langgraph dev shows it."""
    config = dict(cron.payload.get("config") or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron.cron_id}
    return {
        "schedule": cron.schedule,
        **cron.payload,
        "assistant_id": cron.assistant_id,
        "config": config,
    }


def cron_json(cron: CronRecord) -> dict[str, Any]:
    """A cron the way the Agent Server shows it."""
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "on_run_completed": cron.on_run_completed,
        "end_time": iso(cron.end_at),
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "created_at": cron.created_at,
        "updated_at": cron.updated_at,
        "user_id": cron.owner,
        "payload": _payload_json(cron),
        "next_run_date": iso(cron.next_run_at),
        "metadata": cron.metadata,
        "enabled": cron.enabled,
    }


async def _assistant(runs: RunManager, assistant_id: str, user_id: str) -> ResolvedAssistant:
    """The assistant a cron runs (a graph id names its system assistant); 404 if not theirs."""
    return await runs.assistants.resolve(assistant_id, user_id)


def _run_body(cron: CronRecord) -> RunCreate:
    """The run request a firing sends: the stored one, its metadata over the cron's."""
    metadata = {**cron.metadata, **(cron.payload.get("metadata") or {})}
    return RunCreate.model_validate(
        {**cron.payload, "assistant_id": cron.assistant_id, "metadata": metadata}
    )


def _check_run(cron: CronRecord, runner: AgentRunner, task_agent: bool) -> None:
    """Refuse (422) a cron whose firings would be refused, before anything is stored."""
    settings = runner.services.settings
    if cron.payload.get("webhook"):
        raise TurnError(422, "Webhooks are not supported by this server; leave webhook out.")
    refuse_oversized_json(settings, metadata=cron.metadata, input=cron.payload.get("input"))
    try:
        body = _run_body(cron)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise TurnError(422, f"{where}: {problem['msg']}") from None
    stream_modes(body.stream_mode)
    if body.input is None:
        raise TurnError(422, "A cron needs input: the run each firing starts.")
    if not task_agent:
        return
    try:
        check_run_request(body.input, None, settings)
    except RefusedInput as exc:
        raise TurnError(422, str(exc)) from None


async def _create(
    thread_id: str | None,
    body: CronCreate,
    context: Context,
    runner: AgentRunner,
    runs: RunManager,
    crons: CronScheduler,
) -> dict[str, Any]:
    if thread_id is not None:
        await runner.check_access(thread_id, context.user_id)
    assistant = await _assistant(runs, body.assistant_id, context.user_id)
    check_schedule(body.schedule)
    check_timezone(body.timezone)
    payload = body.model_dump(include=set(RUN_FIELDS) | {"webhook"}, exclude_none=True)
    cron = new_cron(
        owner=context.user_id,
        role=context.role,
        assistant_id=assistant.assistant_id,
        thread_id=thread_id,
        schedule=body.schedule,
        timezone=body.timezone,
        end_at=None if body.end_time is None else _aware(body.end_time).timestamp(),
        enabled=body.enabled,
        on_run_completed=(body.on_run_completed or "delete") if thread_id is None else None,
        payload=payload,
        metadata=body.metadata or {},
    )
    _check_run(cron, runner, runner.graphs.get(assistant.graph_id).task_agent)
    limit = runner.services.settings.max_crons_per_user
    try:
        await crons.crons.create(cron, limit=limit)
    except CronLimitReached:
        raise TurnError(
            429,
            f"You already have {limit} crons, the most allowed per user; delete crons you no"
            " longer need before creating more.",
        ) from None
    return cron_json(cron)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(
    thread_id: str, body: CronCreate, context: Ctx, runner: Runner, runs: Runs, crons: Crons
) -> dict[str, Any]:
    """Create a cron that runs on this thread at every slot of its schedule."""
    return await _create(thread_id, body, context, runner, runs, crons)


@router.post("/runs/crons")
async def create_cron(
    body: CronCreate, context: Ctx, runner: Runner, runs: Runs, crons: Crons
) -> dict[str, Any]:
    """Create a cron whose every firing runs on a new thread (deleted after, unless "keep")."""
    return await _create(None, body, context, runner, runs, crons)


def _matches(cron: CronRecord, runner: AgentRunner, body: CronSearch | CronCount) -> bool:
    if body.assistant_id is not None and cron.assistant_id != _resolved(runner, body.assistant_id):
        return False
    if body.thread_id is not None and cron.thread_id != body.thread_id:
        return False
    if isinstance(body, CronSearch) and body.enabled is not None and cron.enabled != body.enabled:
        return False
    return all(cron.metadata.get(k) == v for k, v in (body.metadata or {}).items())


def _resolved(runner: AgentRunner, assistant_id: str) -> str:
    served = runner.graphs.by_assistant(assistant_id)
    return served.assistant_id if served is not None else assistant_id


def _sort_key(field: str) -> Any:
    def key(cron: CronRecord) -> Any:
        if field in ("end_time", "next_run_date"):
            stamp = cron.end_at if field == "end_time" else cron.next_run_at
            return (stamp is not None, stamp or 0.0)
        return str(getattr(cron, field) or "")

    return key


@router.post("/runs/crons/search")
async def search_crons(
    body: CronSearch, context: Ctx, runner: Runner, crons: Crons
) -> JSONResponse:
    """List the caller's crons by assistant, thread, enabled and metadata; sorted and paged."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    if body.thread_id is not None:
        await runner.check_access(body.thread_id, context.user_id)  # another user's: 404
    found = [c for c in await crons.crons.of_owner(context.user_id) if _matches(c, runner, body)]
    found.sort(key=_sort_key(body.sort_by or "created_at"), reverse=body.sort_order != "asc")
    page = found[body.offset : body.offset + body.limit]
    headers = {"X-Pagination-Total": str(len(found))}
    if body.offset + body.limit < len(found):
        headers["X-Pagination-Next"] = str(body.offset + body.limit)
    shown = [cron_json(cron) for cron in page]
    if body.select:
        shown = [{k: v for k, v in item.items() if k in body.select} for item in shown]
    return JSONResponse(shown, headers=headers)


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, context: Ctx, runner: Runner, crons: Crons) -> int:
    """Count the caller's crons by assistant, thread and metadata."""
    refuse_oversized_json(runner.services.settings, metadata=body.metadata)
    if body.thread_id is not None:
        await runner.check_access(body.thread_id, context.user_id)
    return sum(1 for c in await crons.crons.of_owner(context.user_id) if _matches(c, runner, body))


async def _own_cron(cron_id: str, context: Context, crons: CronScheduler) -> CronRecord:
    cron = await crons.crons.get(cron_id, context.user_id)
    if cron is None:
        raise TurnError(404, f"Cron {cron_id} not found.")
    return cron


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: str, context: Ctx, crons: Crons) -> dict[str, Any]:
    """Return one of the caller's crons."""
    return cron_json(await _own_cron(cron_id, context, crons))


@router.patch("/runs/crons/{cron_id}")
async def patch_cron(
    cron_id: str, body: CronPatch, context: Ctx, runner: Runner, runs: Runs, crons: Crons
) -> dict[str, Any]:
    """Change a cron's schedule, time zone, end, enabled flag or run request."""
    given = body.model_fields_set
    if not any(getattr(body, name) is not None or name == "end_time" for name in given):
        raise TurnError(400, "Nothing to update: give at least one field to change.")
    cron = await _own_cron(cron_id, context, crons)
    if body.schedule is not None:
        check_schedule(body.schedule)
        cron.schedule = body.schedule
    if body.timezone is not None:
        check_timezone(body.timezone)
        cron.timezone = body.timezone
    if body.schedule is not None or body.timezone is not None:
        cron.next_run_at = next_slot(cron.schedule, cron.timezone, time.time())
    if "end_time" in given:
        cron.end_at = None if body.end_time is None else _aware(body.end_time).timestamp()
    if body.enabled is not None:
        cron.enabled = body.enabled
    if body.on_run_completed is not None and cron.thread_id is None:
        cron.on_run_completed = body.on_run_completed
    changes = body.model_dump(include=set(RUN_FIELDS) | {"webhook"}, exclude_none=True)
    if body.metadata is not None:
        cron.metadata = {**cron.metadata, **body.metadata}
    cron.payload = {**cron.payload, **changes}
    assistant = await _assistant(runs, cron.assistant_id, context.user_id)
    _check_run(cron, runner, runner.graphs.get(assistant.graph_id).task_agent)
    cron.updated_at = stamp_now()
    if not await crons.crons.replace(cron):
        raise TurnError(404, f"Cron {cron_id} not found.")
    return cron_json(cron)


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: str, context: Ctx, crons: Crons) -> Response:
    """Delete one of the caller's crons: it fires no more."""
    if not await crons.crons.delete(cron_id, context.user_id):
        raise TurnError(404, f"Cron {cron_id} not found.")
    return Response(status_code=204)


async def open_scheduler(
    settings: Settings, runner: AgentRunner, runs: RunManager
) -> CronScheduler:
    """Open the crons table and start firing due crons through `runs` (the app's lifespan)."""

    async def fire(cron: CronRecord, key: str) -> RunRecord:
        return await _create_run(cron.thread_id, _run_body(cron), cron.context(), runner, runs, key)

    async def delete_thread(owner: str, thread_id: str) -> None:
        if await runner.threads.get(thread_id) is not None:
            await runs.delete_thread(thread_id)

    store = await CronStore.open(
        settings.runs_db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous=settings.sqlite_synchronous,
        database_url=settings.postgres_url,
    )
    scheduler = CronScheduler(
        store, fire, delete_thread, poll_s=settings.cron_poll_s, claim_s=settings.run_lease_s
    )
    scheduler.start()
    return scheduler
