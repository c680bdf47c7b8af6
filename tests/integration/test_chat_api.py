"""POST /chat and GET /health on the real server, with the built-in offline engine."""

import subprocess
import sys

import httpx
import pytest

from tests.integration.conftest import REPO, offline_env

pytestmark = pytest.mark.integration


def test_create_then_list_on_the_same_thread(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        first = client.post(
            "/chat",
            json={
                "message": "Create a high-priority task for the quarterly review due next Friday"
            },
        )
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["model_used"] == "offline-engine" and body["fallback_used"] is False
        created = body["tool_calls"][0]
        assert created["tool"] == "create_task"
        task = created["result"]["task"]
        assert task["id"] == "TASK-0001" and task["priority"] == "high"
        assert "quarterly review" in task["title"].lower() and task["due_date"]
        assert "TASK-0001" in body["message"]
        assert body["latency_ms"] > 0 and body["run_id"]

        follow = client.post(
            "/chat", json={"message": "list my tasks", "thread_id": body["thread_id"]}
        )
        assert follow.status_code == 200
        listed = follow.json()
        assert listed["thread_id"] == body["thread_id"]
        assert listed["tool_calls"][0]["tool"] == "list_tasks"
        assert "TASK-0001" in listed["message"]


def test_delete_pauses_for_approval_and_resume_answers_it(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        made = client.post("/chat", json={"message": "add a task to buy milk"}).json()
        thread = made["thread_id"]
        paused = client.post(
            "/chat", json={"message": "delete TASK-0001", "thread_id": thread}
        ).json()
        assert paused["interrupt"]["task_id"] == "TASK-0001"
        busy = client.post("/chat", json={"message": "list my tasks", "thread_id": thread})
        assert busy.status_code == 409 and busy.json()["detail"] == (
            'Deleting TASK-0001 "Buy milk" is waiting for your answer:'
            " say yes to delete it or no to keep it."
        )
        done = client.post("/chat", json={"thread_id": thread, "resume": {"approved": True}})
        assert done.status_code == 200 and done.json()["interrupt"] is None
        again = client.post("/chat", json={"thread_id": thread, "resume": {"approved": True}})
        assert again.status_code == 409 and "nothing to resume" in again.json()["detail"]
        listed = client.post("/chat", json={"message": "list my tasks", "thread_id": thread}).json()
        assert listed["tool_calls"][0]["result"]["count"] == 0


@pytest.mark.parametrize(
    ("payload", "status", "hint"),
    [
        ({"message": ""}, 422, "empty"),
        ({"message": "   "}, 422, "empty"),
        ({"message": "x" * 5000}, 422, "limit is 4000"),
        ({}, 422, "Send a message"),
        ({"message": "hi", "thread_id": "no-such-thread"}, 404, "not found"),
        ({"message": "hi", "resume": {"approved": True}}, 422, "either message or resume"),
        ({"message": 42}, 422, "message"),
        ({"message": "hi", "colour": "blue"}, 422, "colour"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(live_server, payload, status, hint):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        response = client.post("/chat", json=payload)
        assert response.status_code == status, response.text
        assert hint in response.json()["detail"]
        assert (
            client.post(
                "/chat", content=b"{not json", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
        health = client.get("/health").json()
        assert health["status"] == "ok"


def test_health_reports_database_and_tiers(live_server):
    health = httpx.get(f"{live_server.url}/health", timeout=10).json()
    assert health == {
        "status": "ok",
        "database": "ok",
        "tiers": [
            {
                "name": "offline",
                "label": "offline-engine",
                "breaker": "closed",
                "status": "ok",
                "reason": None,
            }
        ],
    }


def test_serve_refuses_a_public_interface_without_keys(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=REPO,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "only serves loopback" in done.stderr


def test_idempotency_key_returns_the_original_answer_and_runs_nothing_twice(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        headers = {"Idempotency-Key": "order-42"}
        body = {"message": "add a task to pay the invoice"}
        first = client.post("/chat", json=body, headers=headers)
        again = client.post("/chat", json=body, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.json()["run_id"] == first.json()["run_id"]
        assert again.json()["message"] == first.json()["message"]
        other = client.post("/chat", json={"message": "add a task to pay twice"}, headers=headers)
        assert other.status_code == 422 and "different request" in other.json()["detail"]
        with client.stream("POST", "/chat/stream", json=body, headers=headers) as replay:
            text = "".join(replay.iter_text())
        assert first.json()["run_id"] in text and "event: done" in text
        listed = client.post("/chat", json={"message": "list my tasks"}).json()
        assert listed["tool_calls"][0]["result"]["count"] == 1  # created once
