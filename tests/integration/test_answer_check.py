"""No claimed action without a write, and a fallback said in words (issue 11, items 2 and 6).

A real server on loopback whose OpenAI-compatible tier is the scripted fake: what the user
is told (`/chat`, `/chat/stream`, an agent-protocol run, the stored thread) and what is in
the task database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from nodes.answer_check import CORRECTION_NOTE
from tests.fakes.llm_servers import (
    FakeOpenAIServer,
    hang,
    refused_url,
    status,
    text,
    tool_call,
)
from tests.integration.conftest import LiveServer
from tests.integration.test_chat_stream import read_events

pytestmark = pytest.mark.integration

NO_CALL = "I didn't change anything: no tool was called to do it in this turn."
MODEL = "openai:gpt-4o-mini"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    fake: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {
        "OPENAI_BASE_URL": fake.base_url,
        "TASKAGENT_MODEL_TIMEOUT_S": "1.5",
        "TASKAGENT_MODEL_MAX_ATTEMPTS": "1",
    }
    live = LiveServer(tmp_path_factory.mktemp("claims") / "data", env=env)
    yield live
    live.stop()


@pytest.fixture
def client(server: LiveServer, fake: FakeOpenAIServer) -> Iterator[httpx.Client]:
    fake.reset()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
    fake.reset()


def chat(client: httpx.Client, message: str, thread_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if thread_id:
        body["thread_id"] = thread_id
    response = client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def new_task(client: httpx.Client, title: str) -> dict[str, Any]:
    response = client.post("/tasks", json={"title": title, "due_date": "2026-12-20"})
    assert response.status_code == 201, response.text
    return dict(response.json())


def task(client: httpx.Client, task_id: str) -> dict[str, Any] | None:
    response = client.get(f"/tasks/{task_id}")
    return dict(response.json()) if response.status_code == 200 else None


def stored_answers(client: httpx.Client, thread_id: str) -> list[str]:
    """The assistant answers stored in the thread after its newest user message."""
    values = client.get(f"/threads/{thread_id}/state").json()["values"]
    messages = values["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["type"] == "human")
    return [m["content"] for m in messages[last_user + 1 :] if m["type"] == "ai" and m["content"]]


def test_a_claim_with_no_call_gets_one_correction_then_an_honest_answer(client, fake):
    before = new_task(client, "Pay rent")
    fake.script(
        text("I updated the task's due date."),
        text(f"I deleted the task: {before['id']}"),
    )
    reply = chat(client, "Set its due date to December 15")
    assert reply["message"] == NO_CALL
    assert stored_answers(client, reply["thread_id"]) == [NO_CALL]
    assert task(client, before["id"]) == before
    first, second = fake.chat_requests
    # The withdrawn answer is gone from the corrective prompt; the note is its last word.
    sent = second.body["messages"]
    assert sent[-1] == {"role": "system", "content": CORRECTION_NOTE}
    assert all("I updated" not in str(m.get("content")) for m in sent)
    assert len(sent) == len(first.body["messages"]) + 1


def test_the_corrective_turn_can_make_the_write_it_claimed(client, fake):
    before = new_task(client, "Book dentist")
    fake.script(
        text("I set the due date to 2026-12-15."),
        tool_call("update_task", {"task_id": before["id"], "due_date": "2026-12-15"}),
        text(f"I updated {before['id']}: it is now due 2026-12-15."),
    )
    reply = chat(client, "move the dentist to December 15")
    assert reply["message"] == f"I updated {before['id']}: it is now due 2026-12-15."
    after = task(client, before["id"])
    assert after is not None and after["due_date"] == "2026-12-15"
    assert [c["tool"] for c in reply["tool_calls"]] == ["update_task"]


def test_an_honest_correction_is_delivered_as_the_model_said_it(client, fake):
    before = new_task(client, "Water plants")
    fake.script(
        text(f"Deleted {before['id']}."),
        text("I did not delete anything; say which task and I will ask for your approval."),
    )
    reply = chat(client, "delete it")
    assert reply["message"].startswith("I did not delete anything")
    assert task(client, before["id"]) == before


def test_has_been_done_after_the_tool_said_not_found_is_not_delivered(client, fake):
    fake.script(
        tool_call("complete_task", {"task_id": "TASK-0160"}),
        text("TASK-0160 has been completed."),
        text("Done: TASK-0160 is now complete."),
    )
    reply = chat(client, "mark TASK-0160 done")
    assert reply["message"].startswith("I didn't change anything: the complete_task tool said:")
    assert "TASK-0160" in reply["message"]
    assert reply["tool_calls"][0]["result"]["ok"] is False


def test_a_read_only_answer_that_claims_changes_is_replaced(client, fake):
    new_task(client, "Renew passport")
    fake.script(
        tool_call("list_tasks", {}),
        text("You have 1 task. I changed 3 task."),
        text("I changed 3 task."),
    )
    reply = chat(client, "what's on my list? say which tasks you changed")
    assert reply["message"] == NO_CALL
    assert [c["tool"] for c in reply["tool_calls"]] == ["list_tasks"]


def test_the_stream_ends_with_the_delivered_answer_not_the_withdrawn_one(client, fake):
    fake.script(
        text("I deleted the task: TASK-0999."),
        text("It has been deleted."),
    )
    with client.stream("POST", "/chat/stream", json={"message": "Delete it"}) as response:
        assert response.status_code == 200
        events = read_events(response)
    tokens = "".join(e["data"]["text"] for e in events if e["event"] == "token")
    assert "I deleted the task" in tokens  # it was streamed before the check withdrew it
    done = events[-1]
    assert done["event"] == "done" and done["data"]["message"] == NO_CALL


async def test_an_agent_protocol_run_ends_on_the_honest_answer(server, fake):
    fake.reset()
    fake.script(text("I created the task for you."), text("The task has been added."))
    sdk = get_client(url=server.url)
    thread = await sdk.threads.create()
    message: Any = {"role": "user", "content": "add call mom"}
    values = await sdk.runs.wait(thread["thread_id"], "agent", input={"messages": [message]})
    assert isinstance(values, dict)
    assert values["messages"][-1]["content"] == NO_CALL
    ai_texts = [m["content"] for m in values["messages"] if m["type"] == "ai"]
    assert ai_texts == [NO_CALL]
    listed = httpx.get(f"{server.url}/tasks", params={"text": "call mom"}, timeout=10).json()
    assert listed["count"] == 0


OFFLINE = "so the built-in offline engine answered.)"


def test_a_refused_request_falls_back_and_says_so(client, fake):
    fake.script(status(400, message="context too long"))
    reply = chat(client, "list my tasks")
    assert reply["fallback_used"] is True and reply["model_used"] == "offline-engine"
    assert reply["message"].startswith(
        f"(The configured model {MODEL} didn't answer — refused the request (HTTP 400) — {OFFLINE}"
    )
    assert stored_answers(client, reply["thread_id"])[-1] == reply["message"]


def test_a_timed_out_model_falls_back_and_says_so(client, fake):
    fake.script(hang(5))
    reply = chat(client, "list my tasks")
    assert reply["fallback_used"] is True
    assert reply["message"].startswith(
        f"(The configured model {MODEL} didn't answer — timed out — {OFFLINE}"
    )


def test_an_unreachable_model_falls_back_and_says_so(tmp_path):
    live = LiveServer(tmp_path / "data", env={"OPENAI_BASE_URL": refused_url()})
    try:
        response = httpx.post(f"{live.url}/chat", json={"message": "what's overdue?"}, timeout=60)
        reply = response.json()
    finally:
        live.stop()
    assert reply["fallback_used"] is True
    assert reply["message"].startswith(
        f"(The configured model {MODEL} didn't answer — unreachable — {OFFLINE}"
    )


def test_no_fallback_no_notice(client, fake):
    fake.script(text("You have no tasks due today."))
    reply = chat(client, "anything due today?")
    assert reply["message"] == "You have no tasks due today." and reply["fallback_used"] is False


NO_ANSWER = "I don't have an answer for that; nothing was changed."


def test_an_empty_answer_after_a_create_says_what_was_done(client, fake):
    fake.script(tool_call("create_task", {"title": "Call mom"}), text("{ }"))
    reply = chat(client, "add call mom")
    (created,) = client.get("/tasks", params={"text": "call mom"}).json()["tasks"]
    assert reply["message"].startswith("Done: ")
    assert created["id"] in reply["message"] and "Call mom" in reply["message"]
    assert stored_answers(client, reply["thread_id"]) == [reply["message"]]


def test_an_empty_answer_with_no_call_says_nothing_was_changed(client, fake):
    before = new_task(client, "Pay the bills")
    fake.script(text("{ }"))
    reply = chat(client, "do the thing")
    assert reply["message"] == NO_ANSWER
    assert stored_answers(client, reply["thread_id"]) == [NO_ANSWER]
    assert task(client, before["id"]) == before


def test_an_empty_streamed_answer_ends_on_the_honest_sentence(client, fake):
    fake.script(text("{ }"))
    with client.stream("POST", "/chat/stream", json={"message": "hmm"}) as response:
        assert response.status_code == 200
        events = read_events(response)
    done = events[-1]
    assert done["event"] == "done" and done["data"]["message"] == NO_ANSWER


def test_an_echo_of_the_request_goes_to_the_next_tier_which_does_it(client, fake):
    fake.script(text("Add a task to water the ferns"))
    reply = chat(client, "add a task to water the ferns")
    assert reply["model_used"] == "offline-engine" and reply["fallback_used"] is True
    assert reply["message"].startswith(
        f"(The configured model {MODEL} didn't answer — it only repeated the request — so the"
        " built-in offline engine answered.)"
    ), reply["message"]
    created = [c["result"]["task"] for c in reply["tool_calls"] if c["tool"] == "create_task"]
    assert [t["title"] for t in created] == ["Water the ferns"]
    assert task(client, created[0]["id"]) is not None
    assert not any("Add a task to" in a for a in stored_answers(client, reply["thread_id"]))


def test_instructions_for_calling_a_tool_are_not_an_answer(client, fake):
    laundry = new_task(client, "Do the laundry")
    fake.script(text('You can mark it done with `complete_task` and {"task": "laundry"}.'))
    reply = chat(client, f"mark {laundry['id']} as done")
    assert reply["model_used"] == "offline-engine"
    assert "described a tool call instead of making it" in reply["message"]
    assert (task(client, laundry["id"]) or {})["status"] == "completed"
    assert not any("complete_task" in a for a in stored_answers(client, reply["thread_id"]))


def test_a_confirmation_in_the_users_words_after_a_call_is_the_models_answer(client, fake):
    ask = "Please add: follow-up call with the supplier about delivery dates"
    fake.script(
        tool_call(
            "create_task", {"title": "Follow-up call with the supplier about delivery dates"}
        ),
        text("Created 'Follow-up call with the supplier about delivery dates'."),
    )
    reply = chat(client, ask)
    assert (reply["model_used"], reply["fallback_used"]) == (MODEL, False), reply["message"]
    assert reply["message"] == "Created 'Follow-up call with the supplier about delivery dates'."


def test_the_next_tier_does_all_of_what_an_echoed_request_asked(client, fake):
    bike = new_task(client, "Fix the bike")
    mom = new_task(client, "Call mom")
    ask = f"mark {mom['id']} and {bike['id']} done"
    fake.script(text(ask.capitalize()))
    reply = chat(client, ask)
    assert reply["model_used"] == "offline-engine", reply["message"]
    assert [(task(client, t["id"]) or {}).get("status") for t in (mom, bike)] == [
        "completed",
        "completed",
    ], reply
