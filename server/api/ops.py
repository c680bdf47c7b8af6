"""Operations endpoints: Prometheus metrics and the readiness probe (`/health` is liveness)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from psycopg_pool import PoolTimeout

from graph import metrics
from graph.services import Services
from graph.settings import Settings
from server.runs.runner import AgentRunner
from server.security.auth import presented_key
from tools.database import acquire_pool, release_pool
from tools.sqlite import now_iso

router = APIRouter(tags=["operations"])

# A probe must answer quickly: a database locked for longer than this counts as not writable.
PROBE_BUSY_TIMEOUT_S = 0.5
RETRY_AFTER_S = 5


def probe_write(path: Path) -> str:
    """Commit a one-row upsert to the SQLite file at `path`; return "ok" or what failed."""
    if not path.exists():
        return "missing"
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw",
            uri=True,
            timeout=PROBE_BUSY_TIMEOUT_S,
            isolation_level=None,
        )
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS readiness_probe"
                " (id INTEGER PRIMARY KEY, checked_at TEXT NOT NULL)"
            )
            conn.execute(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (now_iso(),),
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"not writable: {exc}"
    return "ok"


async def probe_postgres(url: str) -> str:
    """Commit a one-row upsert through the replica's pool; return "ok" or what failed."""
    pool = await acquire_pool(url)
    try:
        async with pool.connection(timeout=PROBE_BUSY_TIMEOUT_S * 4) as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS readiness_probe"
                " (id INTEGER PRIMARY KEY, checked_at TEXT NOT NULL)"
            )
            await conn.execute(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (now_iso(),),
            )
    except (psycopg.Error, PoolTimeout) as exc:
        return f"not writable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    finally:
        await release_pool(url)
    return "ok"


async def _database_checks(settings: Settings) -> dict[str, str]:
    if settings.postgres_url:
        return {"database": await probe_postgres(settings.postgres_url)}
    tasks_db, runs_db = await asyncio.gather(
        asyncio.to_thread(probe_write, settings.tasks_db),
        asyncio.to_thread(probe_write, settings.runs_db),
    )
    return {"tasks_db": tasks_db, "runs_db": runs_db}


async def readiness(services: Services | None) -> dict[str, str]:
    """Run every readiness check ("ok" or the failure, per check) and export the results."""
    if services is None:
        checks = {"startup": "the server is still starting or already stopping"}
    else:
        usable = [tier.name for tier in services.tiers if tier.breaker.state != "open"]
        model = "ok" if usable else "the circuit breaker of every model tier is open"
        checks = {**await _database_checks(services.settings), "model": model}
    for name, result in checks.items():
        metrics.READY_CHECKS.labels(name).set(result == "ok")
    metrics.READY.set(all(result == "ok" for result in checks.values()))
    return checks


def _services(request: Request) -> Services | None:
    runner: AgentRunner | None = getattr(request.app.state, "runner", None)
    return runner.services if runner is not None else None


@router.get("/ready", include_in_schema=False)
async def ready(request: Request) -> JSONResponse:
    """200 when the databases take a write and a model tier is usable, else 503 saying why."""
    checks = await readiness(_services(request))
    failed = [name for name, result in checks.items() if result != "ok"]
    if not failed:
        return JSONResponse({"status": "ready", "checks": checks})
    body: dict[str, Any] = {"status": "not ready", "failed": failed, "checks": checks}
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Prometheus text exposition; behind a bearer key when TASKAGENT_METRICS_KEY is set."""
    services = _services(request)
    key = services.settings.metrics_key if services is not None else None
    if key is not None and key.get_secret_value():
        presented = presented_key(None, authorization) or ""
        if not secrets.compare_digest(presented.encode(), key.get_secret_value().encode()):
            return JSONResponse(
                {"detail": "Send the metrics key as Authorization: Bearer <key>."},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    await readiness(services)  # so `taskagent_ready` is as fresh as the scrape
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
