"""Thread-centric streaming: `POST /threads/{id}/commands` and `POST /threads/{id}/stream/events`.

What the new `useStream` (`@langchain/langgraph-sdk` 1.x `client.threads.stream`) speaks.
Commands are answered in the protocol's envelopes (server/runs/thread_commands.py); the event
stream is the thread's durable run log in protocol shape (server/runs/thread_stream.py), so a
client replays from its `since` cursor after a disconnect or a server restart.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from server.api.protocol.common import Ctx, Runs
from server.api.sse import event_stream
from server.runs.engine import RunManager
from server.runs.runner import TurnError
from server.runs.store import RunEvent
from server.runs.thread_commands import ThreadCommands, error
from server.runs.thread_stream import StreamFilter, follow, supported_channel

router = APIRouter(tags=["thread-centric protocol"])

ALLOWED = (
    "values, updates, messages, tools, custom, lifecycle, input, tasks, or any `custom:<name>`"
)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return ...


@router.post("/threads/{thread_id}/commands", response_model=None)
async def thread_command(
    thread_id: str, request: Request, context: Ctx, runs: Runs
) -> JSONResponse:
    """Run one protocol command on the thread: run.start, input.respond, state.get, ...

    The body is `{"id": <int>, "method": "<command>", "params": {...}}`. Another user's
    thread is not found (404), whatever the body.
    """
    if await runs.runner.threads.get(thread_id) is not None:
        await runs.runner.check_access(thread_id, context.user_id)
    body = await _json_body(request)
    if body is ...:
        return JSONResponse({"detail": "Invalid JSON body"}, status_code=400)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("id"), int)
        or isinstance(body.get("id"), bool)
        or not isinstance(body.get("method"), str)
    ):
        command_id = body.get("id") if isinstance(body, dict) else None
        message = "Protocol commands must include an integer id and string method."
        return JSONResponse(error(command_id, "invalid_argument", message), status_code=400)
    commands = ThreadCommands(runs, context, thread_id)
    return JSONResponse(await commands.handle(body))


@router.post("/threads/{thread_id}/stream/events", response_class=EventSourceResponse)
async def thread_events(
    thread_id: str, request: Request, context: Ctx, runs: Runs
) -> EventSourceResponse:
    """Stream the thread's events (replayed after `since`, then live) for the asked channels.

    The body is `{"channels": [...], "namespaces"?: [[...]], "depth"?: n, "since"?: seq}`.
    The stream stays open across the thread's runs until the client leaves.
    """
    await runs.runner.check_access(thread_id, context.user_id)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise TurnError(400, "Invalid JSON body")
    channels = body.get("channels")
    if not isinstance(channels, list) or not channels:
        raise TurnError(400, "channels is required and must be a non-empty array")
    bad = [c if isinstance(c, str) else repr(c) for c in channels if not supported_channel(c)]
    if bad:
        raise TurnError(
            400, f"channels contains unsupported entries: {', '.join(bad[:5])}. Allowed: {ALLOWED}."
        )
    stream_filter = StreamFilter(
        channels=frozenset(channels), namespaces=_namespaces(body), depth=_count(body, "depth")
    )
    since = _count(body, "since") or 0
    return event_stream(
        _events(runs, thread_id, since, stream_filter),
        ping_s=runs.settings.sse_ping_s,
        location=f"/threads/{thread_id}/stream/events",
        run_location=f"/threads/{thread_id}",
    )


async def _events(
    runs: RunManager, thread_id: str, since: int, stream_filter: StreamFilter
) -> AsyncIterator[RunEvent]:
    async for event in follow(runs, thread_id, since):
        if stream_filter.matches(event):
            yield RunEvent(event["seq"], event["method"], json.dumps(event))


def _namespaces(body: dict[str, Any]) -> tuple[tuple[str, ...], ...] | None:
    raw = body.get("namespaces")
    if not isinstance(raw, list):
        return None
    kept = tuple(
        tuple(ns) for ns in raw if isinstance(ns, list) and all(isinstance(s, str) for s in ns)
    )
    return kept or None


def _count(body: dict[str, Any], key: str) -> int | None:
    """A non-negative integer field (JSON `true` is not 1), else None."""
    value = body.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None
