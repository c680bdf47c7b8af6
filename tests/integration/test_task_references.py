"""Task references: the tools resolve what the model names, and never act on a guessed id.

A real server on loopback with a fake OpenAI-compatible model taught the calls a small real
model makes (it guesses `TASK-0001` for "the insurance task"). Each test has its own user, so
its tasks are the only ones its words can match; the database says what happened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tests.fakes.obedient import ObedientOpenAIServer
from tests.integration.conftest import LiveServer
from tools.dates import parse_date

pytestmark = pytest.mark.integration

USERS = ("ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jo", "kim")


@pytest.fixture(scope="module")
def model() -> Iterator[ObedientOpenAIServer]:
    with ObedientOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model: ObedientOpenAIServer
) -> Iterator[LiveServer]:
    keys = ",".join(f"key-{user}-4242:{user}:write" for user in USERS)
    live = LiveServer(
        tmp_path_factory.mktemp("references") / "data",
        env={
            "TASKAGENT_API_KEYS": keys,
            "OPENAI_BASE_URL": model.base_url,
            "OPENAI_MODEL": "obedient",
        },
    )
    yield live
    live.stop()


def client(server: LiveServer, user: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-Api-Key": f"key-{user}-4242"}, timeout=60)


def create(http: httpx.Client, title: str, **fields: Any) -> str:
    created = http.post("/tasks", json={"title": title, **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def chat(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    reply = http.post("/chat", json=body)
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def tasks_of(server: LiveServer, owner: str) -> dict[str, tuple[str, str, str | None]]:
    """Every task of `owner` in the database: id -> (title, status, due_date)."""
    uri = f"file:{server.data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        found = db.execute(
            "SELECT id, title, status, due_date FROM tasks WHERE owner = ?", (owner,)
        ).fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in found}


def audited(server: LiveServer, user: str, tool: str) -> list[tuple[str, int]]:
    """The audit rows of `user`'s model calls of `tool`: (kind, success)."""
    uri = f"file:{server.data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        found = db.execute(
            "SELECT kind, success FROM audit WHERE user = ? AND tool = ? ORDER BY id", (user, tool)
        ).fetchall()
    return [(row[0], row[1]) for row in found]


def only_result(answer: dict[str, Any], tool: str) -> dict[str, Any]:
    results = [c["result"] for c in answer["tool_calls"] if c["tool"] == tool]
    assert len(results) == 1, answer["tool_calls"]
    result: dict[str, Any] = results[0]
    return result


def test_a_guessed_id_for_the_insurance_task_is_refused_and_pay_rent_is_unchanged(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "ann") as ann:
        rent = create(ann, "Pay rent")
        insurance = create(ann, "Renew car insurance")
        before = tasks_of(server, "ann")
        ask = "rename the insurance task to Insurance renewal 2027"
        model.teach(ask, [("update_task", {"task_id": rent, "title": "Insurance renewal 2027"})])
        answer = chat(ann, {"message": ask})
    assert tasks_of(server, "ann") == before  # Pay rent is still Pay rent; nothing written
    assert before[rent][0] == "Pay rent" and before[insurance][0] == "Renew car insurance"
    refused = only_result(answer, "update_task")
    assert refused["ok"] is False
    assert refused["error"].startswith(f'{rent} has not come up in this conversation and is "Pay')
    assert "pass words from the title" in refused["error"].lower()
    assert audited(server, "ann", "update_task") == [("denied", 0)]


def test_the_same_request_with_title_words_renames_the_insurance_task(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "ben") as ben:
        rent = create(ben, "Pay rent")
        insurance = create(ben, "Renew car insurance", due_date="2027-01-31")
        ask = "rename my insurance task to Insurance 2027 please"
        model.teach(ask, [("update_task", {"task": "insurance", "title": "Insurance 2027"})])
        answer = chat(ben, {"message": ask})
    after = tasks_of(server, "ben")
    assert after[insurance] == ("Insurance 2027", "pending", "2027-01-31")
    assert after[rent] == ("Pay rent", "pending", None)
    result = only_result(answer, "update_task")
    assert result["ok"] is True and result["task"]["id"] == insurance
    assert result["previous"] == {"title": "Renew car insurance"}


def test_an_id_shown_earlier_in_the_thread_or_named_by_the_user_is_acted_on(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "cat") as cat:
        gym = create(cat, "Gym membership")
        report = create(cat, "Quarterly report", priority="normal")
        model.teach("what do I have?", [("list_tasks", {})])
        listed = chat(cat, {"message": "what do I have?"})
        assert {t["id"] for t in only_result(listed, "list_tasks")["tasks"]} == {gym, report}
        # The id came from a tool result of this thread: no title words needed.
        model.teach(
            "make that second one urgent",
            [("update_task", {"task_id": report, "priority": "urgent"})],
        )
        raised = chat(
            cat, {"message": "make that second one urgent", "thread_id": listed["thread_id"]}
        )
        # In a new thread the id was never shown, but the user's words name its title.
        model.teach("the gym thing is done", [("complete_task", {"task_id": gym})])
        done = chat(cat, {"message": "the gym thing is done"})
    after = tasks_of(server, "cat")
    assert after[report][:2] == ("Quarterly report", "pending")
    assert only_result(raised, "update_task")["previous"] == {"priority": "normal"}
    assert after[gym][1] == "completed"
    assert only_result(done, "complete_task")["previous"]["status"] == "pending"


def test_words_matching_several_tasks_write_nothing_and_list_the_candidates(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "dan") as dan:
        mom = create(dan, "Call mom", due_date="2027-03-01")
        bank = create(dan, "Call the bank")
        create(dan, "Buy milk")
        before = tasks_of(server, "dan")
        model.teach("I made the call", [("complete_task", {"task": "call"})])
        answer = chat(dan, {"message": "I made the call"})
        model.teach(
            "forget the zebra task", [("update_task", {"task": "zebra", "priority": "low"})]
        )
        missing = chat(dan, {"message": "forget the zebra task"})
    assert tasks_of(server, "dan") == before
    assert audited(server, "dan", "complete_task") == [("denied", 0)]
    unclear = only_result(answer, "complete_task")
    assert unclear["ok"] is False and "ask the user which one" in unclear["error"]
    assert unclear["candidates"] == [
        {"id": mom, "title": "Call mom", "status": "pending", "due_date": "2027-03-01"},
        {"id": bank, "title": "Call the bank", "status": "pending", "due_date": None},
    ]
    nothing = only_result(missing, "update_task")
    assert nothing["ok"] is False and nothing["error"].startswith('No task matches "zebra"')
    assert {c["title"] for c in nothing["candidates"]} == {"Call mom", "Call the bank", "Buy milk"}


def test_completing_by_words_prefers_the_one_open_task(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "eve") as eve:
        old = create(eve, "Water the plants")
        assert eve.post(f"/tasks/{old}/complete").status_code == 200
        new = create(eve, "Water the plants")
        model.teach("watered the plants", [("complete_task", {"task": "plants"})])
        chat(eve, {"message": "watered the plants"})
    after = tasks_of(server, "eve")
    assert after[old][1] == "completed" and after[new][1] == "completed"


def test_deleting_by_words_asks_about_the_resolved_task_and_deletes_exactly_it(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "fay") as fay:
        dentist = create(fay, "Book dentist appointment")
        doctor = create(fay, "Book doctor appointment")
        model.teach("drop the dentist", [("delete_task", {"task": "dentist"})])
        asked = chat(fay, {"message": "drop the dentist"})
        question = asked["interrupt"]
        assert question["task_id"] == dentist
        assert question["question"] == f'Delete {dentist} "Book dentist appointment"?'
        assert tasks_of(server, "fay").keys() == {dentist, doctor}  # nothing before the yes
        yes = {"approved": True, "tool_call_id": question["tool_call_id"]}
        answered = chat(fay, {"thread_id": asked["thread_id"], "resume": yes})
    assert tasks_of(server, "fay") == {doctor: ("Book doctor appointment", "pending", None)}
    deleted = only_result(answered, "delete_task")["deleted"]
    assert deleted["id"] == dentist and deleted["title"] == "Book dentist appointment"
    assert deleted["priority"] == "normal" and "created_at" in deleted  # whole, for an undo


def test_list_tasks_filters_by_tag_and_pages_compactly(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "gus") as gus:
        for n in range(3):
            create(gus, f"Home chore {n}", tags=["home"], description="x" * 300)
        create(gus, "Office chore", tags=["work"])
        model.teach("what is tagged home?", [("list_tasks", {"tag": "#Home", "limit": 2})])
        answer = chat(gus, {"message": "what is tagged home?"})
        page = gus.get("/tasks", params={"tag": "home", "limit": 2})
    assert page.status_code == 200 and page.json()["total"] == 3 and page.json()["count"] == 2
    assert page.json()["more"] == "1 more; narrow the filters or raise limit"
    assert all("created_at" in t for t in page.json()["tasks"])  # people get whole tasks
    listed = only_result(answer, "list_tasks")
    assert listed["count"] == 2 and listed["total"] == 3
    assert listed["more"] == "1 more; narrow the filters or raise limit"
    assert {t["title"] for t in listed["tasks"]} <= {f"Home chore {n}" for n in range(3)}
    for task in listed["tasks"]:
        assert set(task) == {"id", "title", "status", "priority", "due_date", "tags", "description"}
        assert task["tags"] == ["home"] and len(task["description"]) <= 80


def test_due_dates_are_the_ones_the_user_said_not_the_models_arithmetic(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    friday = parse_date("friday", date.today()).isoformat()
    with client(server, "ivy") as ivy:
        model.teach(
            "add a task to buy oat milk",
            [("create_task", {"title": "Buy oat milk", "due_date": "next Friday"})],
        )
        chat(ivy, {"message": "add a task to buy oat milk"})
        ask = "add the budget review for friday"
        wrong = (date.today() + timedelta(days=30)).isoformat()
        model.teach(ask, [("create_task", {"title": "Budget review friday", "due_date": wrong})])
        chat(ivy, {"message": ask})
    titles = {title: due for title, _, due in tasks_of(server, "ivy").values()}
    assert titles == {"Buy oat milk": None, "Budget review": friday}


def test_it_is_the_task_the_conversation_last_pointed_at(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "jo") as jo:
        rent = create(jo, "Pay rent")
        model.teach("add a task to fix the leaking tap", [("create_task", {"title": "Fix tap"})])
        first = chat(jo, {"message": "add a task to fix the leaking tap"})
        tap = only_result(first, "create_task")["task"]["id"]
        model.teach("make it urgent", [("update_task", {"task": "it", "priority": "urgent"})])
        chat(jo, {"message": "make it urgent", "thread_id": first["thread_id"]})
    after = tasks_of(server, "jo")
    assert after[tap] == ("Fix tap", "pending", None)
    assert after[rent] == ("Pay rent", "pending", None)
    with sqlite3.connect(server.data_dir / "tasks.sqlite") as db:
        priorities = dict(db.execute("SELECT id, priority FROM tasks WHERE owner = 'jo'"))
    assert priorities == {rent: "normal", tap: "urgent"}


def test_it_with_nothing_pointed_at_is_asked_about_not_guessed(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    with client(server, "kim") as kim:
        create(kim, "Pay rent")
        create(kim, "Fix tap")
        before = tasks_of(server, "kim")
        model.teach("delete it", [("delete_task", {"task": "it"})])
        answer = chat(kim, {"message": "delete it"})
    assert tasks_of(server, "kim") == before
    refused = only_result(answer, "delete_task")
    assert refused["ok"] is False and "does not say which task" in refused["error"]
    assert answer.get("interrupt") is None
