"""`GET /threads/{thread_id}/stream`: follow every run of a thread (SDK `threads.join_stream`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse

from server.api.protocol.common import Ctx, Runs
from server.api.sse import event_stream
from server.runs.runner import TurnError
from server.runs.thread_join import STREAM_MODES, join

router = APIRouter(tags=["threads"])


def _modes(request: Request) -> list[str]:
    """The asked modes, repeated or `a,b,c`: dev's `stream_modes`, else the SDK's `stream_mode`.

    langgraph dev reads only `stream_modes`, so the SDK's `stream_mode` (which it always sends,
    `run_modes` by default) is ignored there; here it filters unless `stream_modes` is given.
    """
    query = request.query_params
    given = query.getlist("stream_modes") or query.getlist("stream_mode")
    modes = [mode.strip() for value in given for mode in value.split(",")]
    for mode in modes:
        if mode not in STREAM_MODES:
            raise TurnError(422, f"Invalid stream mode: {mode}")
    return modes or ["run_modes"]


def _cursor(header: str | None) -> int | None:
    """`Last-Event-ID`: an id this stream sent, `-` for the thread's beginning, absent for now."""
    if not header:
        return None
    if header.strip() == "-":
        return 0
    if not header.strip().isdigit():
        raise TurnError(422, "Invalid last-event-id: must be an event id this stream sent.")
    return int(header.strip())


@router.get("/threads/{thread_id}/stream", response_class=EventSourceResponse)
async def join_thread_stream(
    thread_id: str,
    request: Request,
    context: Ctx,
    runs: Runs,
    last_event: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Follow the thread's runs: the live one and each later one, until the client leaves.

    `stream_mode` (or dev's `stream_modes`): `run_modes` (default: every event of every run),
    `lifecycle` (each run's start and `run_done`), `state_update`. `Last-Event-ID` resumes
    right after that event, across runs and restarts; `-` replays the thread's runs from the
    start; without it the stream starts now, as langgraph dev's does.
    """
    modes = _modes(request)
    since = _cursor(last_event)
    await runs.runner.check_access(thread_id, context.user_id)
    return event_stream(join(runs, thread_id, since, modes), ping_s=runs.settings.sse_ping_s)
