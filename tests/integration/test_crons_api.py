"""Crons through the stock langgraph-sdk: scheduled runs on a thread or on new threads.

Schedules here have a seconds field ("* * * * * */2": every even second), which croniter
and so langgraph-api accept too, and the servers look for due crons every 0.2 s
(TASKAGENT_CRON_POLL_S): the real scheduler fires them, only sooner than a minute.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.schema import Cron

from tests.integration.conftest import HasDataDir, LiveServer, db_rows, serve, serve_again

pytestmark = pytest.mark.integration

EVERY_2_S = "* * * * * */2"
NEVER_SOON = "0 0 1 1 *"  # midnight on 1 January
FAST = {"TASKAGENT_CRON_POLL_S": "0.2"}
KEYS = {
    "TASKAGENT_API_KEYS": "key-a:alice:write,key-b:bob:write,key-c:carol:write,"
    "key-d:dave:write,key-e:erin:write",
    "TASKAGENT_MAX_CRONS_PER_USER": "4",
}


def ask(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = serve(tmp_path_factory.mktemp("crons") / "data", env={**FAST, **KEYS})
    yield live
    live.stop()


def fired(server: HasDataDir, cron_id: str) -> list[tuple[float, str, str, int]]:
    """(slot, run id, thread id, thread still to delete) of every firing, as recorded."""
    sql = (
        "SELECT slot, run_id, thread_id, delete_thread FROM cron_runs WHERE cron_id = ?"
        " ORDER BY slot"
    )
    return [tuple(row) for row in db_rows(server, "runs.sqlite", sql, [cron_id])]


def thread_runs(server: HasDataDir, thread_id: str) -> set[str]:
    sql = "SELECT run_id FROM runs WHERE thread_id = ?"
    return {str(row[0]) for row in db_rows(server, "runs.sqlite", sql, [thread_id])}


def thread_exists(server: HasDataDir, thread_id: str) -> bool:
    sql = "SELECT 1 FROM threads WHERE thread_id = ?"
    return bool(db_rows(server, "tasks.sqlite", sql, [thread_id]))


async def made(created: Awaitable[Any]) -> dict[str, Any]:
    """A created cron (the SDK types it as a Run)."""
    return dict(await created)


async def until(check, timeout_s: float = 20.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s:g} s")


async def test_a_thread_cron_runs_as_its_creator_until_deleted(server):
    alice = get_client(url=server.url, api_key="key-a")
    bob = get_client(url=server.url, api_key="key-b")
    thread = await alice.threads.create()
    tid = thread["thread_id"]
    cron = await made(
        alice.crons.create_for_thread(
            tid, "agent", schedule=EVERY_2_S, input=ask("what tasks do I have?")
        )
    )
    assert cron["thread_id"] == tid and cron["user_id"] == "alice" and cron["enabled"] is True
    assert cron["on_run_completed"] is None

    async def two_finished() -> list[Any]:
        runs = await alice.runs.list(tid)
        done = [r for r in runs if r["status"] == "success"]
        return runs if len(done) >= 2 else []

    runs = await until(two_finished, what="two cron runs")
    assert all(r["assistant_id"] == cron["assistant_id"] for r in runs)
    state = await alice.threads.get_state(tid)
    messages = state["values"]["messages"]  # type: ignore[call-overload]
    assert [m["type"] for m in messages].count("human") >= 2
    assert messages[-1]["type"] == "ai" and "no tasks" in messages[-1]["content"]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await bob.runs.list(tid)  # the runs are Alice's, on Alice's thread
    assert refused.value.response.status_code == 404

    await alice.crons.delete(cron["cron_id"])
    await asyncio.sleep(0.5)  # a firing claimed before the delete may still be starting
    count = len(await alice.runs.list(tid, limit=100))
    await asyncio.sleep(4.5)  # two more slots
    assert len(await alice.runs.list(tid, limit=100)) == count
    slots = [slot for slot, *_ in fired(server, cron["cron_id"])]
    assert len(slots) == count and len(set(slots)) == count


async def test_stateless_crons_run_on_new_threads_kept_or_deleted(server):
    carol = get_client(url=server.url, api_key="key-c")
    keep = await made(
        carol.crons.create("agent", schedule=EVERY_2_S, input=ask("hello"), on_run_completed="keep")
    )
    gone = await made(carol.crons.create("agent", schedule=EVERY_2_S, input=ask("hello")))
    assert keep["on_run_completed"] == "keep" and gone["on_run_completed"] == "delete"
    assert keep["thread_id"] is None

    async def both_fired() -> bool:
        kept, deleted = (
            fired(server, keep["cron_id"]),
            fired(server, gone["cron_id"]),
        )
        return bool(kept) and any(row[3] == 0 for row in deleted)

    await until(both_fired, what="a firing of each cron, the deleted one tidied")
    await carol.crons.delete(keep["cron_id"])
    await carol.crons.delete(gone["cron_id"])
    await asyncio.sleep(0.5)

    kept_threads = {row[2] for row in fired(server, keep["cron_id"])}
    listed = {t["thread_id"] for t in await carol.threads.search(limit=100)}
    assert kept_threads and kept_threads <= listed
    some = next(iter(kept_threads))
    runs = await carol.runs.list(some)
    assert [r["status"] for r in runs] == ["success"]
    reply = (await carol.threads.get_state(some))["values"]["messages"][-1]  # type: ignore[call-overload]
    assert reply["type"] == "ai" and reply["content"]

    async def all_tidied() -> bool:
        return all(row[3] == 0 for row in fired(server, gone["cron_id"]))

    await until(all_tidied, what="every deleted cron thread tidied")
    for _, _, thread_id, _ in fired(server, gone["cron_id"]):
        assert thread_id not in listed and not thread_exists(server, thread_id)


async def test_search_count_get_and_patch_answer_in_langgraphs_shapes(server):
    dave = get_client(url=server.url, api_key="key-d")
    thread = await dave.threads.create()
    tid = thread["thread_id"]
    end = datetime.now(UTC) + timedelta(days=30)
    first = await made(
        dave.crons.create_for_thread(
            tid,
            "agent",
            schedule=NEVER_SOON,
            input=ask("hello"),
            metadata={"team": "ops", "n": 1},
            end_time=end,
            timezone="Europe/Paris",
        )
    )
    second = await made(
        dave.crons.create(
            "agent", schedule=NEVER_SOON, input=ask("hi"), metadata={"team": "dev"}, enabled=False
        )
    )
    assert set(first) == set(get_type_hints(Cron))
    new_year_in_paris = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))
    assert first["timezone"] == "Europe/Paris"
    assert datetime.fromisoformat(str(first["next_run_date"])) == new_year_in_paris
    assert abs(datetime.fromisoformat(str(first["end_time"])) - end) < timedelta(seconds=1)

    assert {c["cron_id"] for c in await dave.crons.search()} == {
        first["cron_id"],
        second["cron_id"],
    }
    assert [c["cron_id"] for c in await dave.crons.search(thread_id=tid)] == [first["cron_id"]]
    assert [c["cron_id"] for c in await dave.crons.search(enabled=False)] == [second["cron_id"]]
    assert [c["cron_id"] for c in await dave.crons.search(metadata={"team": "ops"})] == [
        first["cron_id"]
    ]
    assert len(await dave.crons.search(assistant_id=first["assistant_id"])) == 2
    ordered = await dave.crons.search(sort_by="created_at", sort_order="asc", select=["cron_id"])
    assert ordered == [{"cron_id": first["cron_id"]}, {"cron_id": second["cron_id"]}]
    assert await dave.crons.count() == 2
    assert await dave.crons.count(thread_id=tid) == 1
    assert await dave.crons.count(metadata={"team": "dev"}) == 1
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": "key-d"}) as http:
        page = await http.post("/runs/crons/search", json={"limit": 1})
        assert (
            page.headers["X-Pagination-Total"] == "2" and page.headers["X-Pagination-Next"] == "1"
        )
        got = await http.get(f"/runs/crons/{first['cron_id']}")
        assert got.status_code == 200 and got.json()["cron_id"] == first["cron_id"]

    changed = await dave.crons.update(
        first["cron_id"], schedule="*/5 * * * *", enabled=False, metadata={"n": 2}, end_time=None
    )
    assert changed["schedule"] == "*/5 * * * *" and changed["enabled"] is False
    assert changed["end_time"] is None and changed["metadata"] == {"team": "ops", "n": 2}
    next_run = datetime.fromisoformat(str(changed["next_run_date"]))
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(minutes=5)
    assert changed["updated_at"] >= first["updated_at"]
    again = await dave.crons.update(first["cron_id"], input=ask("new words"))
    assert again["payload"]["input"] == ask("new words") and again["schedule"] == "*/5 * * * *"

    await dave.crons.delete(first["cron_id"])
    await dave.crons.delete(second["cron_id"])
    assert await dave.crons.count() == 0


async def test_one_user_never_sees_changes_or_fires_anothers_crons(server):
    alice = get_client(url=server.url, api_key="key-a")
    bob = get_client(url=server.url, api_key="key-b")
    thread = await alice.threads.create()
    cron = await made(
        alice.crons.create_for_thread(
            thread["thread_id"], "agent", schedule=NEVER_SOON, input=ask("hello")
        )
    )
    assert await bob.crons.search() == [] and await bob.crons.count() == 0
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": "key-b"}) as http:
        for method, path, body in [
            ("GET", f"/runs/crons/{cron['cron_id']}", None),
            ("PATCH", f"/runs/crons/{cron['cron_id']}", {"enabled": False}),
            ("DELETE", f"/runs/crons/{cron['cron_id']}", None),
            (
                "POST",
                f"/threads/{thread['thread_id']}/runs/crons",
                {"assistant_id": "agent", "schedule": EVERY_2_S, "input": ask("hi")},
            ),
        ]:
            response = await http.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
    assert [c["enabled"] for c in await alice.crons.search()] == [True]
    await alice.crons.delete(cron["cron_id"])


async def test_bad_requests_answer_4xx_and_create_nothing(server):
    erin = get_client(url=server.url, api_key="key-e")
    thread = await erin.threads.create()
    good: dict[str, Any] = {"assistant_id": "agent", "schedule": NEVER_SOON, "input": ask("hi")}
    bad = [
        ("POST", "/runs/crons", {**good, "schedule": "every day"}, 422),
        ("POST", "/runs/crons", {**good, "schedule": "61 * * * *"}, 422),
        ("POST", "/runs/crons", {**good, "timezone": "Mars/Olympus"}, 422),
        ("POST", "/runs/crons", {**good, "assistant_id": "nobody"}, 422),
        ("POST", "/runs/crons", {**good, "assistant_id": str(uuid.uuid4())}, 404),
        ("POST", "/runs/crons", {**good, "webhook": "http://127.0.0.1:9/hook"}, 422),
        (
            "POST",
            "/runs/crons",
            {**good, "input": {"messages": [{"role": "system", "content": "x"}]}},
            422,
        ),
        ("POST", "/runs/crons", {**good, "input": None}, 422),
        ("POST", "/runs/crons", {**good, "stream_mode": "nonsense"}, 422),
        ("POST", "/runs/crons", {**good, "on_run_completed": "maybe"}, 422),
        ("POST", "/runs/crons", {"schedule": NEVER_SOON}, 422),
        ("POST", f"/threads/{uuid.uuid4()}/runs/crons", good, 404),
        ("POST", "/runs/crons/search", {"sort_by": "schedule"}, 422),
        ("POST", "/runs/crons/search", {"limit": 0}, 422),
        ("PATCH", f"/runs/crons/{uuid.uuid4()}", {"enabled": False}, 404),
        ("DELETE", f"/runs/crons/{uuid.uuid4()}", None, 404),
    ]
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": "key-e"}) as http:
        for method, path, body, status in bad:
            response = await http.request(method, path, json=body)
            assert response.status_code == status, (body, response.text)
            assert isinstance(response.json()["detail"], str)
        assert await erin.crons.count() == 0

        four = [
            await made(erin.crons.create_for_thread(thread["thread_id"], **good)) for _ in range(4)
        ]
        over = await http.post("/runs/crons", json=good)
        assert over.status_code == 429 and "4 crons" in over.json()["detail"]
        cron_id = four[0]["cron_id"]
        for body in ({}, {"schedule": "nope"}, {"timezone": "Nowhere/Else"}, {"input": None}):
            response = await http.patch(f"/runs/crons/{cron_id}", json=body)
            assert response.status_code in (400, 422), (body, response.text)
        unchanged = await http.get(f"/runs/crons/{cron_id}")
        assert unchanged.json() == four[0]
    for cron in four:
        await erin.crons.delete(cron["cron_id"])


async def test_crons_survive_a_crash_fire_missed_slots_once_and_each_slot_once_on_two_workers(
    tmp_path,
):
    data = tmp_path / "data"
    env = {**FAST, "TASKAGENT_RUN_LEASE_S": "2"}
    first = serve(data, env=env)
    try:
        client = get_client(url=first.url)
        thread = await client.threads.create()
        cron = await made(
            client.crons.create_for_thread(
                thread["thread_id"], "agent", schedule=EVERY_2_S, input=ask("hello")
            )
        )

        async def a_firing() -> bool:
            return bool(fired(first, cron["cron_id"]))

        await until(a_firing, what="a first firing")
    finally:
        first.kill()
    killed = time.time()
    await asyncio.sleep(5)  # two or three slots pass while no server runs
    restarted = time.time()
    second = await asyncio.to_thread(serve_again, first, env, ("--workers", "2"), 90)
    try:
        await asyncio.sleep(4.5)  # two more slots, two processes claiming each
    finally:
        second.stop()

    firings = fired(second, cron["cron_id"])
    slots = [slot for slot, *_ in firings]
    missed = [slot for slot in slots if killed < slot < restarted]
    assert len(missed) == 1, f"the slots missed while down fired {len(missed)} times, not once"
    assert len([slot for slot in slots if slot >= restarted]) >= 2  # and on it goes
    assert len(slots) == len(set(slots)), "a slot fired twice"
    # One run per slot: the thread's runs are the recorded firings, plus at most the one a
    # stopping server created but had not recorded yet (fired again, same key, next start).
    runs = thread_runs(second, thread["thread_id"])
    assert {run_id for _, run_id, _, _ in firings} <= runs
    assert len(runs) - len(firings) <= 1
