"""POST /chat/stream (curl's view): SSE events with ids, rejoin with Last-Event-ID, approvals."""

from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from tests.integration.conftest import db_rows, serve, serve_again

pytestmark = pytest.mark.integration

CREATE = "Create a high-priority task for the quarterly review due next Friday"


def read_events(response: httpx.Response, stop_after: int | None = None) -> list[dict[str, Any]]:
    """Parse SSE frames into [{event, id, data}] (comments/pings are skipped)."""
    events: list[dict[str, Any]] = []
    for sse in EventSource(response).iter_sse():
        if not sse.data:
            continue
        events.append({"event": sse.event, "id": sse.id, "data": sse.json()})
        if stop_after is not None and len(events) >= stop_after:
            break
    return events


def test_stream_events_ids_and_the_rejoin_location(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        with client.stream("POST", "/chat/stream", json={"message": CREATE}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            location = response.headers["location"]
            events = read_events(response)
        names = [e["event"] for e in events]
        assert names[0] == "metadata" and names[-1] == "done"
        assert "tool_call" in names and "tool_result" in names and "token" in names
        assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
        tokens = "".join(e["data"]["text"] for e in events if e["event"] == "token")
        done = events[-1]["data"]
        assert tokens == done["message"] and done["model_used"] == "offline-engine"
        run_id = events[0]["data"]["run_id"]
        assert location == f"/chat/runs/{run_id}/stream"
        with client.stream("GET", location, headers={"Last-Event-ID": events[2]["id"]}) as again:
            replay = read_events(again)
        assert replay == events[3:]


def test_approval_over_the_stream(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        made = client.post("/chat", json={"message": "add a task to buy milk"}).json()
        thread = made["thread_id"]
        with client.stream(
            "POST", "/chat/stream", json={"message": "delete TASK-0001", "thread_id": thread}
        ) as r:
            events = read_events(r)
        interrupt = next(e for e in events if e["event"] == "interrupt")["data"]["value"]
        assert interrupt["task_id"] == "TASK-0001" and "buy milk" in interrupt["title"].lower()
        assert events[-1]["data"]["interrupt"]["task_id"] == "TASK-0001"
        with client.stream(
            "POST", "/chat/stream", json={"thread_id": thread, "resume": {"approved": False}}
        ) as r:
            rejected = read_events(r)
        assert (
            "kept" in rejected[-1]["data"]["message"].lower()
            or "did not" in rejected[-1]["data"]["message"]
        )
        threads = client.get("/chat/threads").json()
        assert threads[0]["thread_id"] == thread and threads[0]["status"] == "idle"
        view = client.get(f"/chat/threads/{thread}/messages").json()
        assert [m["role"] for m in view["messages"]][:2] == ["user", "assistant"]
        assert view["active_run_id"] is None and view["interrupt"] is None


def test_unknown_run_and_thread_are_404(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        assert client.get("/chat/runs/nope/stream").status_code == 404
        assert client.get("/chat/threads/nope/messages").status_code == 404
        assert (
            client.post("/chat/stream", json={"message": "hi", "thread_id": "nope"}).status_code
            == 404
        )


def test_graceful_shutdown_leaves_the_run_resumable(tmp_path):
    env = {"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "200", "TASKAGENT_SHUTDOWN_GRACE_S": "0.2"}
    server = serve(tmp_path / "data", env=env)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/chat/stream", json={"message": CREATE}) as response:
            first = read_events(response, stop_after=2)
        run_id = first[0]["data"]["run_id"]
    server.terminate()
    server.stop()
    [(status,)] = db_rows(
        server, "runs.sqlite", "SELECT status FROM runs WHERE run_id = ?", [run_id]
    )
    assert status == "running"  # left for the next start, not marked failed
    restarted = serve_again(server, env={"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "0"})
    try:
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            with client.stream(
                "GET", f"/chat/runs/{run_id}/stream", headers={"Last-Event-ID": first[-1]["id"]}
            ) as response:
                rest = read_events(response)
        assert rest[-1]["event"] == "done" and "TASK-0001" in rest[-1]["data"]["message"]
        ids = [int(e["id"]) for e in first + rest]
        assert ids == list(range(1, len(ids) + 1))
        assert db_rows(server, "tasks.sqlite", "SELECT COUNT(*) FROM tasks") == [(1,)]
    finally:
        restarted.stop()


def test_quiet_streams_get_heartbeat_comments(tmp_path):
    env = {"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "400", "TASKAGENT_SSE_PING_S": "0.1"}
    server = serve(tmp_path / "data", env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            with client.stream("POST", "/chat/stream", json={"message": CREATE}) as response:
                lines = []
                for line in response.iter_lines():
                    lines.append(line)
                    if line.startswith("event: done"):
                        break
        assert any(line.startswith(":") for line in lines), "no heartbeat comment while waiting"
    finally:
        server.stop()


def test_a_turn_over_its_time_limit_ends_with_a_partial_answer(tmp_path):
    env = {"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "300", "TASKAGENT_TURN_TIMEOUT_S": "1.5"}
    server = serve(tmp_path / "data", env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answer = client.post("/chat", json={"message": CREATE})
            assert answer.status_code == 200
            body = answer.json()
            assert body["model_used"] == "timeout"
            assert "took longer than 1.5 s" in body["message"]
            assert "create_task" in body["message"]  # what it did before stopping
            thread = body["thread_id"]
            view = client.get(f"/chat/threads/{thread}/messages").json()
            assert view["status"] == "idle" and view["messages"][-1]["content"] == body["message"]
    finally:
        server.stop()
