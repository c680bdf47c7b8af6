"""Following a thread's runs with the stock SDK: `threads.join_stream` (GET /threads/{id}/stream).

The stream carries every event of the thread's runs, each run closed by `metadata
{"status": "run_done"}`, and stays open between runs (as langgraph dev's does); a client that
rejoins with `Last-Event-ID` gets exactly the events after it, also after a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.integration.conftest import REPO, LiveServer, serve, serve_again

pytestmark = pytest.mark.integration

CONFIG = REPO / "tests" / "graphs" / "langgraph.json"
ALICE = {"X-Api-Key": "k-alice-0000"}
BOB = {"X-Api-Key": "k-bob-00000"}
KEYS = "k-alice-0000:alice:write,k-bob-00000:bob:write"
MODES = ["values", "updates"]
# The test graphs (`slow` sleeps `pause_s` in its second step), for two users.
SERVED: dict[str, Any] = {"args": ("--config", str(CONFIG)), "env": {"TASKAGENT_API_KEYS": KEYS}}


def start_server(data: Any) -> LiveServer:
    """A server on `data` serving the test graphs."""
    return serve(data, **SERVED)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the tests that need no restart."""
    live = start_server(tmp_path_factory.mktemp("thread-join") / "data")
    yield live
    live.stop()


def client(live: LiveServer, headers: dict[str, str] = ALICE) -> Any:
    """The stock async SDK client as one user."""
    return get_client(url=live.url, api_key=None, headers=headers)


def is_run_done(part: Any) -> bool:
    """Whether a stream part is the thread stream's end of one run."""
    return bool(part.event == "metadata" and part.data.get("status") == "run_done")


async def join(sdk: Any, thread_id: str, **kw: Any) -> Any:
    """`threads.join_stream` as an iterator the test can read in parts."""
    return (await sdk.threads.join_stream(thread_id, **kw)).__aiter__()


async def collect(stream: Any, runs_done: int, *, close: bool = False) -> list[Any]:
    """The stream's parts until `runs_done` runs ended on it (the stream itself stays open)."""
    parts: list[Any] = []

    async def read() -> None:
        while sum(map(is_run_done, parts)) < runs_done:
            parts.append(await anext(stream))

    try:
        await asyncio.wait_for(read(), 20)
    finally:
        if close:
            await stream.aclose()
    return parts


async def two_finished_runs(sdk: Any) -> tuple[str, list[str]]:
    """A thread of Alice's with two finished `slow` runs."""
    thread = await sdk.threads.create()
    run_ids = []
    for _ in range(2):
        run = await sdk.runs.create(
            thread["thread_id"], "slow", input={"pause_s": 0}, stream_mode=MODES
        )
        await sdk.runs.join(thread["thread_id"], run["run_id"])
        run_ids.append(run["run_id"])
    return thread["thread_id"], run_ids


async def wait_running(sdk: Any, thread_id: str, run_id: str) -> None:
    deadline = time.monotonic() + 10
    while (await sdk.runs.get(thread_id, run_id))["status"] != "running":
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.05)


async def test_join_follows_the_live_run_and_the_next_one_on_one_connection(server):
    sdk = client(server)
    thread_id = (await sdk.threads.create())["thread_id"]
    first = await sdk.runs.create(thread_id, "slow", input={"pause_s": 1.5}, stream_mode=MODES)
    await wait_running(sdk, thread_id, first["run_id"])

    stream = await join(sdk, thread_id)
    # Joined during the slow step: the rest of the first run arrives, then its end.
    parts = await collect(stream, 1)
    assert parts[-1].data == {"status": "run_done", "run_id": first["run_id"]}
    assert {p.event for p in parts[:-1]} <= {"values", "updates"}
    assert parts[-2].event in ("values", "updates") and parts[-2].data
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["log"] == ["first", "slow"]

    # The stream stays open: the thread's next run comes on the same connection, whole.
    second = await sdk.runs.create(thread_id, "slow", input={"pause_s": 0}, stream_mode=MODES)
    more = await collect(stream, 1)
    await stream.aclose()
    assert more[0].event == "metadata"
    assert more[0].data == {"run_id": second["run_id"], "attempt": 1}
    assert more[-1].data == {"status": "run_done", "run_id": second["run_id"]}
    assert [p.data for p in more if p.event == "values"][-1]["log"] == ["first", "slow"] * 2
    ids = [int(p.id) for p in parts + more]
    assert ids == sorted(set(ids)), "ids grow strictly across runs"


async def test_stream_mode_lifecycle_keeps_each_runs_start_and_end(server):
    sdk = client(server)
    thread_id, (one, two) = await two_finished_runs(sdk)
    stream = await join(sdk, thread_id, stream_mode="lifecycle", last_event_id="-")
    parts = await collect(stream, 2, close=True)
    assert [(p.event, p.data) for p in parts] == [
        ("metadata", {"run_id": one, "attempt": 1}),
        ("metadata", {"status": "run_done", "run_id": one}),
        ("metadata", {"run_id": two, "attempt": 1}),
        ("metadata", {"status": "run_done", "run_id": two}),
    ]
    # dev's own parameter name wins over the SDK's (which the SDK always sends).
    stream = await join(sdk, thread_id, last_event_id="-", params={"stream_modes": "lifecycle"})
    assert [(p.event, p.data) for p in await collect(stream, 2, close=True)] == [
        (p.event, p.data) for p in parts
    ]
    # Without `lifecycle`, `run_modes` (the default) is every event of every run.
    everything = await collect(await join(sdk, thread_id, last_event_id="-"), 2, close=True)
    assert {p.event for p in everything} == {"metadata", "values", "updates"}
    assert len(everything) > len(parts)


async def test_rejoin_with_last_event_id_gets_exactly_the_rest(server):
    sdk = client(server)
    thread_id, _ = await two_finished_runs(sdk)
    whole = await collect(await join(sdk, thread_id, last_event_id="-"), 2, close=True)
    first_done = next(i for i, p in enumerate(whole) if is_run_done(p))
    # Cut inside the first run, at its end, and inside the second run.
    for cut in (1, first_done, first_done + 2):
        last = whole[cut].id
        stream = await join(sdk, thread_id, last_event_id=last)
        rest = await collect(stream, 2 - (cut >= first_done), close=True)
        assert [(p.id, p.event, p.data) for p in rest] == [
            (p.id, p.event, p.data) for p in whole[cut + 1 :]
        ]


async def test_another_users_thread_is_not_found_and_bad_input_is_refused(server):
    alice, bob = client(server), client(server, BOB)
    thread_id = (await alice.threads.create())["thread_id"]
    for sdk, thread in ((bob, thread_id), (alice, "00000000-0000-4000-8000-000000000000")):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await anext(await join(sdk, thread))
        assert refused.value.response.status_code == 404
    async with httpx.AsyncClient(base_url=server.url, headers=ALICE) as http:
        for params, headers, detail in (
            ({"stream_mode": "bogus"}, {}, "Invalid stream mode: bogus"),
            ({"stream_modes": "lifecycle,nope"}, {}, "Invalid stream mode: nope"),
            ({}, {"Last-Event-ID": "x"}, "Invalid last-event-id"),
        ):
            answer = await http.get(f"/threads/{thread_id}/stream", params=params, headers=headers)
            assert answer.status_code == 422
            assert answer.json()["detail"].startswith(detail)


async def test_rejoin_after_a_restart_gets_exactly_the_rest(tmp_path):
    live = start_server(tmp_path / "data")
    try:
        thread_id, _ = await two_finished_runs(client(live))
        stream = await join(client(live), thread_id, last_event_id="-")
        whole = await collect(stream, 2, close=True)
    finally:
        live.stop()
    live = serve_again(live, **SERVED)
    try:
        sdk = client(live)
        stream = await join(sdk, thread_id, last_event_id=whole[2].id)
        rest = await collect(stream, 2, close=True)
        assert [(p.id, p.data) for p in rest] == [(p.id, p.data) for p in whole[3:]]
        # A run after the restart continues the ids where the thread left them.
        stream = await join(sdk, thread_id, last_event_id=whole[-1].id)
        run = await sdk.runs.create(thread_id, "slow", input={"pause_s": 0}, stream_mode=MODES)
        third = await collect(stream, 1)
        await stream.aclose()
        assert third[-1].data == {"status": "run_done", "run_id": run["run_id"]}
        assert int(third[0].id) > int(whole[-1].id)
    finally:
        live.stop()
