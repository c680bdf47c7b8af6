"""The FastAPI application: Agent Server protocol, seed chat endpoints, the browser chat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from graph.redaction import Redactor
from graph.settings import Settings, get_settings
from models.providers import Reachability
from server.api import admin as admin_api
from server.api import chat as chat_api
from server.api import ops as ops_api
from server.api import protocol
from server.api import tasks as tasks_api
from server.api.json_bodies import BodiesAreJson
from server.api.schemas import ErrorResponse, HealthResponse, TierHealth
from server.api.storage_errors import answer_storage_errors
from server.observability import wallclock
from server.observability.logs import REQUEST_ID_HEADER, log_config
from server.observability.request_context import RequestContext, request_id_of
from server.runs.audit_retention import watch_audit_retention
from server.runs.engine import RunManager
from server.runs.runner import AgentRunner, TurnError
from server.runs.store import RunStore
from server.runs.thread_ttl import watch_ttls
from server.security.auth import KeyRing
from server.security.browser_guard import protect
from server.security.cors import AllowedOrigins, BrowserCORS
from server.security.limits import RequestSizeLimit
from server.security.proxies import behind_proxies
from server.security.ratelimit import Limiters
from server.security.textguard import RejectLoneSurrogates
from tools.storage_errors import log_failure

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
RETENTION_SWEEP_S = 3600
HEALTH_DB_TIMEOUT_S = 1.0


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the app; databases open in the lifespan, never at import."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limiters = await Limiters.open(settings)
        try:
            runs = await RunManager.open(settings, limiters.requests)
        except BaseException:
            await limiters.close()
            raise
        runner, store = runs.runner, runs.store
        app.state.runner, app.state.runs = runner, runs
        app.state.keyring = KeyRing.from_settings(settings)
        app.state.limiter = limiters.requests
        app.state.auth_failures = limiters.auth_failures
        app.state.audit = runner.services.tasks
        reachability = app.state.reachability = Reachability(runner.services.tiers)
        await reachability.check()  # an unreachable model is reported once, at start-up
        prober = asyncio.create_task(reachability.watch())
        resumed = await runs.recover()
        if resumed:
            log.warning("resumed %d run(s) left unfinished by a process that is gone", len(resumed))
        crons = app.state.crons = await protocol.crons.open_scheduler(settings, runner, runs)
        sweeper = asyncio.create_task(_sweep_events(store, settings.event_retention_s))
        ttls = asyncio.create_task(watch_ttls(runs, settings.thread_ttl_sweep_s))
        background = [sweeper, prober, ttls]
        if settings.audit_retention_days > 0:
            days = settings.audit_retention_days
            tasks = runner.services.tasks
            background.append(
                asyncio.create_task(watch_audit_retention(store, tasks, days, RETENTION_SWEEP_S))
            )
        if settings.wallclock_probes:
            background.append(_probe(runner, store))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await crons.stop()
            await runs.close()
            await limiters.close()

    docs = settings.api_docs  # Swagger UI and ReDoc load their scripts from a CDN: opt-in.
    app = FastAPI(
        title="taskagent",
        version=protocol.common.VERSION,
        description="A task-management agent on an explicit LangGraph state machine.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    # What routes and middleware read: this app's settings, never the environment's.
    app.state.settings = settings

    @app.exception_handler(TurnError)
    async def turn_error(_: Request, exc: TurnError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        broken = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if broken is not None:
            where = broken["loc"][-1] if len(broken["loc"]) > 1 else 0
            why = (broken.get("ctx") or {}).get("error", "unreadable")
            detail = f"The request body is not valid JSON ({why} at character {where})."
            return JSONResponse(status_code=422, content={"detail": detail})
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: "
            f"{str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        return JSONResponse(status_code=422, content={"detail": problems})

    answer_storage_errors(app)  # locked, full or failing disk: 503 + Retry-After

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Answered outside the request middleware, so the id is attached here.
        request_id = request_id_of(request)
        log.exception("unhandled error on %s", request.url.path, extra={"request_id": request_id})
        return JSONResponse(
            status_code=500,
            content={"detail": "Internal error; see server log."},
            headers={REQUEST_ID_HEADER: request_id},
        )

    @app.get("/health", response_model=HealthResponse)
    async def health(request: Request) -> HealthResponse:
        """Report liveness (always 200 while serving), the database and each tier's breaker."""
        runner: AgentRunner = request.app.state.runner
        try:
            ping = runner.services.tasks.ping()
            database = "ok" if await asyncio.wait_for(ping, HEALTH_DB_TIMEOUT_S) else "error"
        except Exception:
            database = "error"
        reachability: Reachability = request.app.state.reachability
        tiers = [
            TierHealth(
                name=t.name,
                label=t.label,
                breaker=t.breaker.state,
                status=reachability.status(t)[0],
                reason=reachability.status(t)[1],
            )
            for t in runner.services.tiers
        ]
        return HealthResponse(
            status="ok" if database == "ok" else "degraded", database=database, tiers=tiers
        )

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        """Serve the browser chat."""
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # Errors are {"detail": "<sentence>"} everywhere; the spec says so.
    errors: dict[int | str, dict[str, Any]] = {422: {"model": ErrorResponse}}
    app.include_router(chat_api.router, responses=errors)
    app.include_router(protocol.router, responses=errors)
    app.include_router(admin_api.router, responses=errors)
    app.include_router(tasks_api.router, responses=errors)
    app.include_router(ops_api.router)
    app.add_middleware(BodiesAreJson)
    app.add_middleware(RejectLoneSurrogates)
    hosts = [*settings.allowed_hosts, settings.host.lower()]
    origins = AllowedOrigins.parse(settings.allowed_origins)
    protect(app, hosts, origins, csp_exempt={"/docs", "/docs/oauth2-redirect", "/redoc"})
    app.add_middleware(
        RequestSizeLimit,  # before any route: oversized requests cost no auth or parsing work
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    # Outside the size limit and the guard, so a browser page can read their refusals too.
    app.add_middleware(BrowserCORS, origins=origins)
    app.add_middleware(RequestContext)  # outermost: its id is on every response, 422s included
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app


def worker_app() -> ASGIApp:
    """The app of one `taskagent serve --workers N` process, built from its environment.

    uvicorn starts each worker as a fresh interpreter and calls this factory there; the
    supervisor prepared the environment (and checked the settings) before starting them.
    """
    settings = get_settings()
    logging.config.dictConfig(
        log_config(
            settings.log_level, settings.log_format, redactor=Redactor.from_settings(settings)
        )
    )
    return behind_proxies(create_app(settings), settings.forwarded_allow_ips)


def _probe(runner: AgentRunner, store: RunStore) -> asyncio.Task[None]:
    """Time every connection's queue and the locks around it; sample the loop's lag."""
    # Steps write checkpoints through the saver's own writer when it has one (saver_pool).
    for conn, db in (
        (getattr(runner.saver, "writer", getattr(runner.saver, "conn", None)), "checkpoints"),
        (runner.services.tasks._writer, "tasks"),
        (runner.services.tasks._reader, "task reads"),
        (runner.threads._conn, "threads"),
        (store._conn, "runs"),
    ):
        wallclock.probe_connection(conn, db)
    if isinstance(saver_lock := getattr(runner.saver, "lock", None), asyncio.Lock):
        wallclock.probe_lock(saver_lock, "checkpoints")
    wallclock.probe_lock(runner.services.tasks._lock, "tasks")
    wallclock.probe_lock(store._write, "runs")
    return asyncio.create_task(wallclock.watch_loop_lag())


async def _sweep_events(store: RunStore, retention_s: float) -> None:
    while True:
        try:
            async with store.one_replica("event-retention") as mine:
                removed = await store.prune_events(timedelta(seconds=retention_s)) if mine else 0
            if removed:
                log.info("pruned %d logged events older than %ss", removed, retention_s)
        except Exception as exc:
            log_failure(log, "event retention sweep", exc)
        await asyncio.sleep(RETENTION_SWEEP_S)
