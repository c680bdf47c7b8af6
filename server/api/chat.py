"""The seed endpoints: POST /chat, POST /chat/stream with rejoin, and the chat page's views."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from sse_starlette import EventSourceResponse

from graph.context import Context
from graph.settings import Settings
from server.api.deps import context_of, runner_of, runs_of, settings_of
from server.api.schemas import (
    ChatRequest,
    ChatResponse,
    ChatThread,
    ErrorResponse,
    StoppedRun,
    ThreadListQuery,
    ThreadPrefixQuery,
    ThreadTitleRequest,
)
from server.api.sse import event_stream, last_event_id
from server.runs.engine import RunManager
from server.runs.runner import AgentRunner, TurnError
from server.runs.threads import ThreadInfo, UnresolvedPrefix
from server.security.limits import LastEventId, refuse_oversized_json
from tools.storage_errors import EVENT_ERROR as STORAGE_ERROR
from tools.storage_errors import StorageUnavailable

router = APIRouter(tags=["chat"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Makes a retried request safe."),
]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}


def _payload(body: ChatRequest, settings: Settings) -> dict[str, Any]:
    refuse_oversized_json(settings, resume=body.resume)
    limit = settings.max_message_chars
    if body.message is not None and len(body.message) > limit:
        raise TurnError(422, f"message has {len(body.message)} characters; the limit is {limit}.")
    if body.resume is not None:
        return {"resume": body.resume}
    if body.message is not None:
        return {"message": body.message}
    return {"continue": True}


@router.post("/chat", response_model=ChatResponse, responses=ERRORS)
async def chat(
    body: ChatRequest,
    context: Annotated[Context, Depends(context_of)],
    runs: Annotated[RunManager, Depends(runs_of)],
    settings: Annotated[Settings, Depends(settings_of)],
    idempotency_key: IdempotencyKey = None,
) -> ChatResponse:
    """Run one turn of the agent and return its answer and the tools it used.

    Send an `Idempotency-Key` to make a retry safe: the same key and body return the
    original answer without running anything again.
    """
    run = await runs.create(
        context=context,
        thread_id=body.thread_id,
        kind="chat",
        payload=_payload(body, settings),
        idempotency_key=idempotency_key,
    )
    done: dict[str, Any] | None = None
    async for event in runs.events(run.run_id):
        if event.event == "done":
            done = json.loads(event.data)
        elif event.event == "error":
            error = json.loads(event.data)
            if error.get("error") == STORAGE_ERROR:
                raise StorageUnavailable(error.get("reason", "busy"))
            status = 409 if error.get("error") == "BadRequest" else 500
            raise TurnError(status, error.get("message", "The run failed."))
    if done is None:
        raise TurnError(409, f"Run {run.run_id} was cancelled before it answered.")
    return ChatResponse.model_validate(done)


@router.post("/chat/stream", response_class=EventSourceResponse, responses=ERRORS)
async def chat_stream(
    body: ChatRequest,
    context: Annotated[Context, Depends(context_of)],
    runs: Annotated[RunManager, Depends(runs_of)],
    settings: Annotated[Settings, Depends(settings_of)],
    idempotency_key: IdempotencyKey = None,
) -> EventSourceResponse:
    """Run one turn and stream it as SSE: metadata, token, tool_call, tool_result, interrupt, done.

    The run goes on if the client disconnects; rejoin at the `Location` with `Last-Event-ID`.
    A repeat with the same `Idempotency-Key` streams the original run again.
    """
    run = await runs.create(
        context=context,
        thread_id=body.thread_id,
        kind="chat",
        payload=_payload(body, settings),
        idempotency_key=idempotency_key,
    )
    location = f"/chat/runs/{run.run_id}/stream"
    return event_stream(
        runs.events(run.run_id),
        ping_s=settings.sse_ping_s,
        location=location,
        run_location=location,
    )


@router.get("/chat/runs/{run_id}/stream", response_class=EventSourceResponse, responses=ERRORS)
async def rejoin_chat_stream(
    run_id: str,
    context: Annotated[Context, Depends(context_of)],
    runs: Annotated[RunManager, Depends(runs_of)],
    settings: Annotated[Settings, Depends(settings_of)],
    last_event: LastEventId = None,
) -> EventSourceResponse:
    """Replay a chat run's events after `Last-Event-ID`, then follow it live to the end."""
    run = await runs.store.get(run_id)
    if run is None or run.owner != context.user_id:
        raise TurnError(404, f"Run {run_id} not found.")
    location = f"/chat/runs/{run_id}/stream"
    return event_stream(
        runs.events(run_id, last_event_id(last_event)),
        ping_s=settings.sse_ping_s,
        location=location,
        run_location=location,
    )


@router.post("/chat/runs/{run_id}/cancel", response_model=StoppedRun, responses=ERRORS)
async def cancel_chat_run(
    run_id: str,
    context: Annotated[Context, Depends(context_of)],
    runs: Annotated[RunManager, Depends(runs_of)],
) -> dict[str, Any]:
    """Stop a chat run (the stop button): it ends where it is and writes nothing more.

    Answers with the run's status afterwards; stopping a run that already ended changes
    nothing (`cancelled` is false), so a late click is harmless.
    """
    run = await runs.store.get(run_id)
    if run is None or run.owner != context.user_id or run.kind != "chat":
        raise TurnError(404, f"Run {run_id} not found.")
    cancelled = await runs.cancel(run_id)
    status = await runs.store.status(run_id)
    return {
        "run_id": run_id,
        "thread_id": run.thread_id,
        "status": status or run.status,
        "cancelled": cancelled,
    }


@router.get("/chat/threads", response_model=list[ChatThread], responses=ERRORS)
async def chat_threads(
    query: Annotated[ThreadListQuery, Query()],
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> list[dict[str, Any]]:
    """List the user's threads, most recently active first; `q` keeps those that mention it."""
    found = await runner.threads.find(context.user_id, query=query.q.strip(), limit=query.limit)
    return [thread_json(info) for info in found]


@router.get("/chat/threads/resolve", response_model=ChatThread, responses=ERRORS)
async def resolve_chat_thread(
    query: Annotated[ThreadPrefixQuery, Query()],
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """Return the one thread of the user whose id starts with `prefix` (at least 4 hex digits)."""
    try:
        return thread_json(await runner.threads.resolve(context.user_id, query.prefix))
    except UnresolvedPrefix as exc:
        raise TurnError(exc.status, str(exc)) from None


@router.get("/chat/threads/{thread_id}", response_model=ChatThread, responses=ERRORS)
async def chat_thread(
    thread_id: str,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """Return one of the user's threads: title, status, times and the approval it waits for."""
    return thread_json(await runner.check_access(thread_id, context.user_id))


@router.patch("/chat/threads/{thread_id}", response_model=ChatThread, responses=ERRORS)
async def rename_chat_thread(
    thread_id: str,
    body: ThreadTitleRequest,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
) -> dict[str, Any]:
    """Rename a thread; a title the user set is never replaced by a summary."""
    await runner.check_access(thread_id, context.user_id)
    await runner.threads.set_title(thread_id, body.title, "user")
    return thread_json(await runner.check_access(thread_id, context.user_id))


@router.delete("/chat/threads/{thread_id}", status_code=204, responses=ERRORS)
async def delete_chat_thread(
    thread_id: str,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
    runs: Annotated[RunManager, Depends(runs_of)],
) -> Response:
    """Delete a thread with its checkpoints and runs; refused while an answer is being written."""
    await runner.check_access(thread_id, context.user_id)
    if await runs.active_runs(thread_id):
        raise TurnError(
            409,
            f"Thread {thread_id} is still answering; stop it or wait for the answer,"
            " then delete it.",
        )
    await runs.delete_thread(thread_id)
    return Response(status_code=204)


def thread_json(info: ThreadInfo) -> dict[str, Any]:
    """A thread as the chat page and the terminal show it."""
    waiting = info.interrupt if info.status == "interrupted" else None
    return {
        "thread_id": info.thread_id,
        "title": info.title,
        "status": info.status,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "waiting_approval": None
        if not waiting
        else {
            "task_id": waiting.get("task_id"),
            "title": waiting.get("title"),
            "question": waiting.get("question"),
        },
    }


@router.get("/chat/threads/{thread_id}/messages", responses=ERRORS)
async def chat_thread_messages(
    thread_id: str,
    context: Annotated[Context, Depends(context_of)],
    runner: Annotated[AgentRunner, Depends(runner_of)],
    runs: Annotated[RunManager, Depends(runs_of)],
) -> dict[str, Any]:
    """Return a thread's whole conversation for display, and the run still in progress."""
    info = await runner.check_access(thread_id, context.user_id)
    active = await runs.active_runs(thread_id)
    messages: list[dict[str, Any]] = []
    for message in await runner.history(thread_id):
        if isinstance(message, HumanMessage):
            messages.append({"role": "user", "content": message.text})
        elif isinstance(message, AIMessage):
            messages.append(
                {
                    "role": "assistant",
                    "content": message.text,
                    "tool_calls": [
                        {"id": c["id"], "tool": c["name"], "arguments": c["args"]}
                        for c in message.tool_calls
                    ],
                    "model_used": message.response_metadata.get("model_used"),
                }
            )
        elif isinstance(message, ToolMessage):
            try:
                result: Any = json.loads(message.text)
            except json.JSONDecodeError:
                result = message.text
            messages.append(
                {
                    "role": "tool",
                    "content": message.text,
                    "tool_call_id": message.tool_call_id,
                    "result": result,
                }
            )
    return {
        "thread_id": thread_id,
        "status": info.status,
        "active_run_id": active[0] if active else None,
        "interrupt": info.interrupt if info.status == "interrupted" else None,
        "messages": messages,
    }


def turn_error_response(exc: TurnError) -> JSONResponse:
    """Render a TurnError as the JSON error every route answers with."""
    return JSONResponse(status_code=exc.status, content={"detail": exc.message})
