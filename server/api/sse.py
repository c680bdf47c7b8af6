"""The one place SSE responses are built: sse-starlette with pings, headers and send timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from graph import metrics
from server.runs.store import RunEvent

SEND_TIMEOUT_SECONDS = 30
# The event loop keeps only weak references to tasks: a disconnect handler nobody else
# refers to could be garbage-collected half-way. It stays here until it is done.
_disconnect_tasks: set[asyncio.Task[None]] = set()


def last_event_id(header: str | None) -> int:
    """Parse a `Last-Event-ID` header (our ids are run sequence numbers); absent means 0."""
    if not header:
        return 0
    try:
        return max(0, int(header.strip()))
    except ValueError:
        return 0


def event_stream(
    events: AsyncIterator[RunEvent],
    *,
    ping_s: float,
    location: str | None = None,
    run_location: str | None = None,
    on_disconnect: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> EventSourceResponse:
    """Stream run events as SSE (`event`, `data`, `id`).

    A heartbeat comment goes out every `ping_s` seconds (the app's TASKAGENT_SSE_PING_S).
    `Location` is where a client rejoins the stream, `Content-Location` the run itself (the
    SDK reads the run id from it); a stream of no one run (a thread's) sends neither.
    `on_disconnect` runs when the client goes away first.
    """

    async def frames() -> AsyncIterator[ServerSentEvent]:
        finished = False
        metrics.ACTIVE_STREAMS.inc()
        try:
            async for event in events:
                yield ServerSentEvent(data=event.data, event=event.event, id=str(event.seq))
            finished = True
        finally:
            metrics.ACTIVE_STREAMS.dec()
            if not finished and on_disconnect is not None:
                # The generator is being torn down (client gone): act outside its cancellation.
                task = asyncio.get_running_loop().create_task(on_disconnect())
                _disconnect_tasks.add(task)
                task.add_done_callback(_disconnect_tasks.discard)

    return EventSourceResponse(
        frames(),
        ping=ping_s,
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={
            "X-Accel-Buffering": "no",
            "Cache-Control": "no-store",
            **({"Location": location} if location else {}),
            **({"Content-Location": run_location} if run_location else {}),
        },
    )
