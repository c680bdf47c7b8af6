"""The FastAPI application: POST /chat and GET /health on the shared runner."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from graph.context import Context
from graph.settings import Settings, get_settings
from server.runner import AgentRunner, TurnError
from server.schemas import ChatRequest, ChatResponse, ErrorResponse, HealthResponse, TierHealth

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the app; the runner opens in the lifespan, never at import."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = await AgentRunner.open(settings)
        app.state.runner = runner
        try:
            yield
        finally:
            await runner.close()

    app = FastAPI(
        title="taskagent",
        version="0.1.0",
        description="A task-management agent on an explicit LangGraph state machine.",
        lifespan=lifespan,
    )

    @app.exception_handler(TurnError)
    async def turn_error(_: Request, exc: TurnError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: "
            f"{str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"detail": "Internal error; see server log."})

    @app.post(
        "/chat",
        response_model=ChatResponse,
        responses={
            404: {"model": ErrorResponse},
            409: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
        },
    )
    async def chat(body: ChatRequest, request: Request) -> ChatResponse:
        """Run one turn of the agent and return its answer and the tools it used."""
        if body.message is not None and len(body.message) > settings.max_message_chars:
            raise TurnError(
                422,
                f"message has {len(body.message)} characters; the limit is "
                f"{settings.max_message_chars}.",
            )
        runner: AgentRunner = request.app.state.runner
        context = Context(request_id=request.headers.get("x-request-id") or str(uuid.uuid4()))
        result = await runner.run_turn(
            context=context, message=body.message, thread_id=body.thread_id, resume=body.resume
        )
        return ChatResponse.model_validate(result.__dict__)

    @app.get("/health", response_model=HealthResponse)
    async def health(request: Request) -> HealthResponse:
        """Report liveness, the database and each model tier's breaker."""
        runner: AgentRunner = request.app.state.runner
        try:
            database = "ok" if await runner.services.tasks.ping() else "error"
        except Exception:
            database = "error"
        tiers = [
            TierHealth(name=t.name, label=t.label, breaker=t.breaker.state)
            for t in runner.services.tiers
        ]
        return HealthResponse(
            status="ok" if database == "ok" else "degraded", database=database, tiers=tiers
        )

    return app
