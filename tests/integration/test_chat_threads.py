"""Threads for people: summarised titles, rename, delete, search, id prefixes; approvals in words.

A real server on loopback with two users' keys, driven over HTTP as the chat page and the
terminal drive it; the built-in offline engine plays the model. What happened is read from the
database (tasks, audit) and from the routes a user meets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime as dt
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.llm_servers import (
    CutMidStream,
    FakeOpenAIServer,
    Reply,
    _Handler,
    text,
    tool_call,
)
from tests.integration.conftest import LiveServer, db_rows, serve

pytestmark = pytest.mark.integration

ALICE, BOB = "k-alice-threads-0001", "k-bob-threads-0002"
KEYS = f"{ALICE}:alice:write,{BOB}:bob:write"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = serve(tmp_path_factory.mktemp("chat-threads") / "data", env={"TASKAGENT_API_KEYS": KEYS})
    yield live
    live.stop()


@pytest.fixture
def alice(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": ALICE}, timeout=30) as client:
        yield client


@pytest.fixture
def bob(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": BOB}, timeout=30) as client:
        yield client


def say(client: httpx.Client, message: str, thread_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if thread_id is not None:
        body["thread_id"] = thread_id
    answer = client.post("/chat", json=body)
    assert answer.status_code == 200, answer.text
    reply: dict[str, Any] = answer.json()
    return reply


def rows(server: LiveServer, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return db_rows(server, "tasks.sqlite", sql, params)


def task_titles(server: LiveServer, owner: str = "alice") -> dict[str, str]:
    return dict(rows(server, "SELECT id, title FROM tasks WHERE owner = ?", owner))


def created(reply: dict[str, Any]) -> str:
    calls = [c for c in reply["tool_calls"] if c["tool"] == "create_task"]
    assert calls, reply
    task_id: str = calls[0]["result"]["task"]["id"]
    return task_id


def thread_of(client: httpx.Client, thread_id: str) -> dict[str, Any]:
    listed = [t for t in client.get("/chat/threads").json() if t["thread_id"] == thread_id]
    assert len(listed) == 1, listed
    thread: dict[str, Any] = listed[0]
    return thread


def waiting_on_delete(client: httpx.Client, what: str) -> tuple[str, str]:
    """A thread of the user's whose agent waits for approval to delete a new task."""
    first = say(client, f"add a task to {what}")
    task_id = created(first)
    paused = say(client, f"delete {task_id}", first["thread_id"])
    assert paused["interrupt"]["task_id"] == task_id
    return first["thread_id"], task_id


def approvals(server: LiveServer, thread_id: str) -> list[tuple[str, int]]:
    return rows(
        server,
        "SELECT tool, success FROM audit WHERE kind = 'approval' AND thread_id = ? ORDER BY id",
        thread_id,
    )


# --- approvals answered in plain words ------------------------------------------------------


@pytest.mark.parametrize("word", ["Yes!", "  ok ", "Do it.", "approve"])
def test_a_plain_yes_deletes_the_task_it_was_asked_about(
    server: LiveServer, alice: httpx.Client, word: str
) -> None:
    thread_id, task_id = waiting_on_delete(alice, f"return the library book {word}")
    assert thread_of(alice, thread_id)["waiting_approval"]["task_id"] == task_id

    answered = say(alice, word, thread_id)

    assert answered["interrupt"] is None
    assert [c["tool"] for c in answered["tool_calls"]] == ["delete_task"]
    assert task_id not in task_titles(server)
    assert approvals(server, thread_id) == [("delete_task", 1)]
    after = thread_of(alice, thread_id)
    assert after["status"] == "idle" and after["waiting_approval"] is None


@pytest.mark.parametrize("word", ["no", "Keep it!", "cancel", "Don\u2019t"])
def test_a_plain_no_keeps_the_task(server: LiveServer, alice: httpx.Client, word: str) -> None:
    thread_id, task_id = waiting_on_delete(alice, f"water the ferns {word}")

    answered = say(alice, word, thread_id)

    assert answered["interrupt"] is None
    assert task_id in task_titles(server)
    assert approvals(server, thread_id) == [("delete_task", 0)]
    # The thread goes on as usual afterwards.
    assert say(alice, "list my tasks", thread_id)["tool_calls"][0]["tool"] == "list_tasks"


def test_a_yes_over_the_stream_answers_too(server: LiveServer, alice: httpx.Client) -> None:
    thread_id, task_id = waiting_on_delete(alice, "sort the recycling")
    with alice.stream(
        "POST", "/chat/stream", json={"thread_id": thread_id, "message": "sure"}
    ) as response:
        assert response.status_code == 200
        kinds = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert "tool_result" in kinds and kinds[-1] == "done" and "interrupt" not in kinds
    assert task_id not in task_titles(server)


@pytest.mark.parametrize("message", ["list my tasks", "yes, but rename it first", "maybe"])
def test_anything_else_while_waiting_says_what_waits_in_words(
    server: LiveServer, alice: httpx.Client, message: str
) -> None:
    thread_id, task_id = waiting_on_delete(alice, f"buy stamps {len(message)}")
    title = task_titles(server)[task_id]
    audit_before = rows(server, "SELECT COUNT(*) FROM audit")

    for route in ("/chat", "/chat/stream"):
        refused = alice.post(route, json={"thread_id": thread_id, "message": message})
        assert refused.status_code == 409
        assert refused.json() == {
            "detail": f'Deleting {task_id} "{title}" is waiting for your answer:'
            " say yes to delete it or no to keep it."
        }
    assert task_id in task_titles(server)
    assert rows(server, "SELECT COUNT(*) FROM audit") == audit_before
    assert thread_of(alice, thread_id)["waiting_approval"] == {
        "task_id": task_id,
        "title": title,
        "question": f'Delete {task_id} "{title}"?',
    }


def test_another_users_yes_answers_nothing(
    server: LiveServer, alice: httpx.Client, bob: httpx.Client
) -> None:
    thread_id, task_id = waiting_on_delete(alice, "file the receipts")
    refused = bob.post("/chat", json={"thread_id": thread_id, "message": "yes"})
    assert refused.status_code == 404
    assert task_id in task_titles(server)
    assert thread_of(alice, thread_id)["waiting_approval"]["task_id"] == task_id


# --- titles, listing and search -------------------------------------------------------------


def test_titles_are_summarised_from_the_first_turn(alice: httpx.Client) -> None:
    made = say(alice, "Hey, can you please add a task to renew the passport?")
    listing = say(alice, "list my tasks")
    overdue = say(alice, "what's overdue?")
    chatter = say(alice, "hello there, could you tell me a joke about penguins please")

    titles = {t["thread_id"]: t["title"] for t in alice.get("/chat/threads").json()}
    assert titles[made["thread_id"]] == "Renew the passport"
    assert titles[listing["thread_id"]] == "My open tasks"
    assert titles[overdue["thread_id"]] == "My overdue tasks"
    assert titles[chatter["thread_id"]] == "There, could you tell me a joke about penguins"
    assert all(len(title) <= 48 for title in titles.values())
    # Later turns do not retitle a thread.
    say(alice, "add a task to call the bank", made["thread_id"])
    assert thread_of(alice, made["thread_id"])["title"] == "Renew the passport"


def test_the_listing_has_times_and_newest_activity_first(alice: httpx.Client) -> None:
    older = say(alice, "add a task to oil the bike")["thread_id"]
    newer = say(alice, "add a task to wash the car")["thread_id"]
    time.sleep(1.1)  # the index keeps activity times to the second
    say(alice, "list my tasks", older)  # the older thread is now the most recently active

    listed = alice.get("/chat/threads").json()
    order = [t["thread_id"] for t in listed]
    assert order.index(older) < order.index(newer)
    thread = listed[order.index(older)]
    assert set(thread) == {
        "thread_id",
        "title",
        "status",
        "created_at",
        "updated_at",
        "waiting_approval",
    }
    created_at, updated_at = (
        dt.fromisoformat(thread["created_at"]),
        dt.fromisoformat(thread["updated_at"]),
    )
    assert created_at.utcoffset() == timedelta(0) and updated_at.utcoffset() == timedelta(0)
    assert created_at <= updated_at
    assert len(alice.get("/chat/threads", params={"limit": 2}).json()) == 2
    assert alice.get("/chat/threads", params={"limit": 0}).status_code == 422
    unknown = alice.get("/chat/threads", params={"sort": "title"})
    assert unknown.status_code == 422 and "sort" in unknown.json()["detail"]


def test_search_matches_titles_and_first_messages_of_ones_own_threads(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    word = f"zebra{uuid.uuid4().hex[:6]}"
    titled = say(alice, f"add a task to feed the {word}")["thread_id"]
    # Summarised to "My open tasks": only its first message holds the word.
    listing = say(alice, f"list my tasks, {word.upper()} edition")["thread_id"]
    say(bob, f"add a task to feed the {word}")

    found = alice.get("/chat/threads", params={"q": word.upper()}).json()
    assert {t["thread_id"] for t in found} == {titled, listing}
    assert alice.get("/chat/threads", params={"q": f"{word}%_"}).json() == []
    assert len(bob.get("/chat/threads", params={"q": word}).json()) == 1


# --- rename, delete, resolve ----------------------------------------------------------------


def test_rename_sticks_and_bad_titles_are_refused(alice: httpx.Client, bob: httpx.Client) -> None:
    thread_id = say(alice, "add a task to mend the fence")["thread_id"]

    renamed = alice.patch(f"/chat/threads/{thread_id}", json={"title": "  Garden jobs  "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "Garden jobs" and renamed.json()["thread_id"] == thread_id

    for bad in ("   ", "x" * 121):
        refused = alice.patch(f"/chat/threads/{thread_id}", json={"title": bad})
        assert refused.status_code == 422
        assert "A thread title needs 1 to 120 characters" in refused.json()["detail"]
    assert alice.patch(f"/chat/threads/{thread_id}", json={}).status_code == 422
    assert bob.patch(f"/chat/threads/{thread_id}", json={"title": "Mine"}).status_code == 404

    say(alice, "add a task to paint the shed", thread_id)
    assert thread_of(alice, thread_id)["title"] == "Garden jobs"
    assert alice.get(f"/chat/threads/{thread_id}").json()["title"] == "Garden jobs"


def test_a_title_set_before_the_first_answer_is_kept(alice: httpx.Client) -> None:
    # A protocol thread with no turn yet: renamed first, then its first turn runs.
    thread_id = alice.post("/threads", json={}).json()["thread_id"]
    assert alice.patch(f"/chat/threads/{thread_id}", json={"title": "Errands"}).status_code == 200
    say(alice, "add a task to post the parcel", thread_id)
    assert thread_of(alice, thread_id)["title"] == "Errands"


def test_delete_removes_the_thread_its_checkpoints_and_runs(
    server: LiveServer, alice: httpx.Client, bob: httpx.Client
) -> None:
    reply = say(alice, "add a task to clean the gutters")
    thread_id, run_id = reply["thread_id"], reply["run_id"]
    assert bob.delete(f"/chat/threads/{thread_id}").status_code == 404

    assert alice.delete(f"/chat/threads/{thread_id}").status_code == 204

    assert thread_id not in {t["thread_id"] for t in alice.get("/chat/threads").json()}
    assert alice.get(f"/chat/threads/{thread_id}/messages").status_code == 404
    assert alice.get(f"/chat/runs/{run_id}/stream").status_code == 404
    assert alice.get(f"/threads/{thread_id}").status_code == 404
    left = "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?"
    assert db_rows(server, "checkpoints.sqlite", left, [thread_id]) == [(0,)]
    assert alice.delete(f"/chat/threads/{thread_id}").status_code == 404
    # The task the thread created is the user's and stays.
    assert created(reply) in task_titles(server)


def test_an_id_prefix_finds_one_thread(alice: httpx.Client, bob: httpx.Client) -> None:
    stem = uuid.uuid4().hex[:6]
    ids = [f"{stem}{n}0-0000-4000-8000-000000000000" for n in (1, 2)]
    for thread_id in ids:
        assert alice.post("/threads", json={"thread_id": thread_id}).status_code == 200
    alice.patch(f"/chat/threads/{ids[0]}", json={"title": "First one"})

    found = alice.get("/chat/threads/resolve", params={"prefix": ids[0][:8].upper()})
    assert found.status_code == 200 and found.json()["thread_id"] == ids[0]
    assert found.json()["title"] == "First one"

    ambiguous = alice.get("/chat/threads/resolve", params={"prefix": stem})
    assert ambiguous.status_code == 409
    detail = ambiguous.json()["detail"]
    assert ids[0] in detail and ids[1] in detail and '"First one"' in detail

    assert bob.get("/chat/threads/resolve", params={"prefix": ids[0][:8]}).status_code == 404
    missing = alice.get("/chat/threads/resolve", params={"prefix": "ffffffff-ffff"})
    assert missing.status_code == 404 and "ffffffff-ffff" in missing.json()["detail"]
    for bad in ("abc", "zzzz", "", "abcd%"):
        refused = alice.get("/chat/threads/resolve", params={"prefix": bad})
        assert refused.status_code == 422 and "first 4 characters" in refused.json()["detail"]


def test_unknown_and_foreign_runs_cannot_be_stopped(alice: httpx.Client, bob: httpx.Client) -> None:
    reply = say(alice, "add a task to check the smoke alarm")
    assert bob.post(f"/chat/runs/{reply['run_id']}/cancel").status_code == 404
    assert alice.post("/chat/runs/no-such-run/cancel").status_code == 404
    # A run that already ended: a late click on stop changes nothing.
    late = alice.post(f"/chat/runs/{reply['run_id']}/cancel")
    assert late.status_code == 200
    assert late.json() == {
        "run_id": reply["run_id"],
        "thread_id": reply["thread_id"],
        "status": "success",
        "cancelled": False,
    }


def events_of(lines: Iterator[str]) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind:
            events.append((kind, json.loads(line[6:])))
    return events


# --- stop -----------------------------------------------------------------------------------


class SlowOpenAIServer(FakeOpenAIServer):
    """A model that thinks for `delay_s` before each answer (a stop button's use case)."""

    delay_s = 0.0

    def _chat(
        self, handler: _Handler, body: dict[str, Any], behaviour: Reply | CutMidStream
    ) -> None:
        self._stopping.wait(self.delay_s)
        super()._chat(handler, body, behaviour)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[tuple[SlowOpenAIServer, LiveServer]]:
    with SlowOpenAIServer() as fake:
        env = {
            "OPENAI_BASE_URL": fake.base_url,
            "TASKAGENT_MODEL_TIMEOUT_S": "20",
            "TASKAGENT_API_KEYS": KEYS,
        }
        live = serve(tmp_path / "data", env=env)
        try:
            yield fake, live
        finally:
            live.stop()


def test_stop_cancels_the_run_mid_answer_and_the_thread_goes_on(
    slow: tuple[SlowOpenAIServer, LiveServer],
) -> None:
    fake, server = slow
    fake.delay_s = 3.0
    fake.script(tool_call("create_task", {"title": "Call the plumber"}))
    user, other = (
        httpx.Client(base_url=server.url, headers={"X-Api-Key": key}, timeout=30)
        for key in (ALICE, BOB)
    )
    with user, other:
        with user.stream(
            "POST", "/chat/stream", json={"message": "add a task to call the plumber"}
        ) as response:
            assert response.status_code == 200
            run_id = response.headers["location"].split("/")[-2]
            lines = response.iter_lines()
            head = [next(lines)]
            while not head[-1].startswith("data: "):
                head.append(next(lines))
            first = events_of(iter(head))
            assert first[0][0] == "metadata"
            thread_id = first[0][1]["thread_id"]
            deadline = time.monotonic() + 10
            while not fake.chat_requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert fake.chat_requests, "the model was never asked"

            assert other.post(f"/chat/runs/{run_id}/cancel").status_code == 404
            busy = user.delete(f"/chat/threads/{thread_id}")
            assert busy.status_code == 409 and "still answering" in busy.json()["detail"]
            started = time.monotonic()
            stopped = user.post(f"/chat/runs/{run_id}/cancel")
            assert stopped.status_code == 200, stopped.text
            assert stopped.json() == {
                "run_id": run_id,
                "thread_id": thread_id,
                "status": "interrupted",
                "cancelled": True,
            }
            assert time.monotonic() - started < 2.5  # did not wait for the model
            rest = events_of(lines)
        # The stream ends saying the run was stopped: no tool call, no answer.
        assert [(kind, data.get("error")) for kind, data in rest] == [("error", "Cancelled")]

        time.sleep(fake.delay_s)  # the model's late answer comes and goes
        assert rows(server, "SELECT COUNT(*) FROM tasks") == [(0,)]
        assert rows(server, "SELECT COUNT(*) FROM audit WHERE kind = 'tool'") == [(0,)]
        assert thread_of(user, thread_id)["status"] == "idle"

        fake.delay_s = 0.0
        fake.script(tool_call("create_task", {"title": "Call the electrician"}), text("Done."))
        again = say(user, "add a task to call the electrician", thread_id)
        assert again["thread_id"] == thread_id
        assert [c["tool"] for c in again["tool_calls"]] == ["create_task"]
        assert list(task_titles(server).values()) == ["Call the electrician"]
