"""The SSE response helper."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator

from server.api.sse import event_stream
from server.runs.store import RunEvent


async def test_the_disconnect_handler_finishes_even_if_nothing_else_refers_to_it():
    loop = asyncio.get_running_loop()
    futures: list[weakref.ref[asyncio.Future[None]]] = []
    finished = asyncio.Event()

    async def on_disconnect() -> None:
        # Waits on a future that only this task refers to (as a cancelled run's clean-up can).
        future: asyncio.Future[None] = loop.create_future()
        futures.append(weakref.ref(future))
        await future
        finished.set()

    async def events() -> AsyncIterator[RunEvent]:
        yield RunEvent(1, "token", "{}")
        await asyncio.Event().wait()  # the run goes on; the client leaves first

    response = event_stream(
        events(), ping_s=15, location="/x", run_location="/x", on_disconnect=on_disconnect
    )
    frames = response.body_iterator
    await anext(frames)  # type: ignore[call-overload]
    await frames.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0)  # the handler starts and waits
    gc.collect()
    [future] = [ref() for ref in futures]
    assert future is not None, "the disconnect handler was garbage-collected mid-way"
    future.set_result(None)
    await asyncio.wait_for(finished.wait(), timeout=5)
