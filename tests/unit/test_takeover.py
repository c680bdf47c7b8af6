"""Two engines on one data dir: a run whose lease lapses is finished by the other, once."""

from __future__ import annotations

import asyncio
import json

from graph.context import Context
from tests.fakes.chat_models import ScriptedChatModel
from tests.unit.test_graph import GatedModel

ME = Context(user_id="alice", role="write")


async def test_a_stalled_process_loses_its_run_to_another_which_finishes_it(open_engine):
    stalled = GatedModel(script=["never sent"])  # its gate never opens
    a = await open_engine(("openai", stalled), run_lease_s=1.0, model_timeout_s=30.0)
    b = await open_engine(
        ("openai", ScriptedChatModel(script=["answered by B"])), run_lease_s=1.0, run_poll_s=0.1
    )
    run = await a.create(
        context=ME, thread_id=None, kind="chat", payload={"message": "what should I do first?"}
    )
    assert run.lease_owner == a.identity
    await asyncio.sleep(0.2)  # A is inside the model call now

    async def never(*_: object) -> dict[str, str | None]:
        await asyncio.Event().wait()
        return {}

    # A stalls: it renews nothing more (a live renewal could win its lease back before B's
    # claim) and its lease runs out.
    a.store.renew = never
    await a.store.release(a.identity)

    finished = await asyncio.wait_for(b.wait(run.run_id), timeout=10)
    assert (finished.status, finished.attempt) == ("success", 2)
    # A stops (its leases unconfirmed, or lost) without writing anything more.
    await asyncio.sleep(0.5)
    assert not await a.is_live(run.run_id)
    log = await b.store.events_after(run.run_id, 0)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))  # no gap, no duplicate
    done = [json.loads(e.data) for e in log if e.event == "done"]
    assert [d["message"] for d in done] == ["answered by B"]
    # A client of A still reads the whole run, B's part from the log.
    seen = [e.seq async for e in a.events(run.run_id)]
    assert seen == [e.seq for e in log]
    history = await b.runner.history(run.thread_id)
    assert [(m.type, m.text) for m in history] == [
        ("human", "what should I do first?"),
        ("ai", "answered by B"),
    ]
