"""Tool calls a small model writes as text run as real calls; the user never sees the JSON.

One real server on loopback whose OpenAI tier is the fake OpenAI server answering the way
Qwen2.5-Coder on llama-server does: doubled braces, `<tool_call>` tags, several calls in one
reply, `function` as the name key, arguments that fail validation, and leftover `{ }`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from tests.fakes.llm_servers import FakeOpenAIServer, json_text, text
from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    fake: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {"OPENAI_BASE_URL": fake.base_url, "TASKAGENT_MODEL_TIMEOUT_S": "10"}
    live = LiveServer(tmp_path_factory.mktemp("written") / "data", env=env)
    yield live
    live.stop()


def chat(server: LiveServer, message: str, thread_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if thread_id:
        body["thread_id"] = thread_id
    response = httpx.post(f"{server.url}/chat", json=body, timeout=60)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def tasks(server: LiveServer) -> list[tuple[str, str]]:
    uri = f"file:{server.data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return list(db.execute("SELECT title, priority FROM tasks ORDER BY id"))


def assistant_texts(server: LiveServer, thread_id: str) -> list[str]:
    state = httpx.get(f"{server.url}/threads/{thread_id}/state", timeout=10).json()
    return [
        str(m.get("content") or "") for m in state["values"]["messages"] if m.get("type") == "ai"
    ]


def test_a_doubled_brace_call_with_a_bad_argument_is_corrected_by_the_model(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    fake.reset()
    fake.script(
        # "medium" is no priority: the guard tells the model, which corrects itself.
        json_text(
            '<tool_call>\n{{"name": "create_task", "arguments": {{"title": "Pay rent",'
            ' "priority": "medium"}}}}}\n</tool_call>'
        ),
        json_text(
            '{{"name": "create_task", "arguments": {{"title": "Pay rent", "priority": "high"}}}}'
        ),
        text("I created the task Pay rent.\n{ }"),
    )
    reply = chat(server, "Add a task to pay rent, medium priority")
    assert reply["model_used"] == "openai:gpt-4o-mini" and reply["fallback_used"] is False
    assert reply["message"] == "I created the task Pay rent."
    assert tasks(server) == [("Pay rent", "high")]
    [bounced, created] = reply["tool_calls"]
    assert bounced["tool"] == created["tool"] == "create_task"
    assert bounced["result"]["ok"] is False and "priority" in json.dumps(bounced["result"])
    assert created["result"]["ok"] is True
    # What the model read back: its calls as real calls, the guard's error as a tool result.
    second = fake.chat_requests[1].body["messages"]
    assert second[-2]["role"] == "assistant" and not second[-2].get("content")
    assert second[-2]["tool_calls"][0]["function"]["name"] == "create_task"
    assert second[-1]["role"] == "tool" and "priority" in second[-1]["content"]
    texts = assistant_texts(server, reply["thread_id"])
    assert not any("{" in t or "tool_call" in t for t in texts), texts


def test_several_calls_in_one_reply_all_run_and_an_empty_brace_answer_is_dropped(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    before = len(tasks(server))
    fake.reset()
    fake.script(
        json_text(
            "<tool_call>\n"
            '{"name": "create_task", "arguments": {"title": "Buy milk"}}\n'
            "</tool_call>\n"
            "<tool_call>\n"
            '{"function": "create_task",'
            ' "arguments": {"title": "Call Bob", "priority": "urgent"}}\n'
            "</tool_call>"
        ),
        text("{ }"),
    )
    reply = chat(server, "Add buy milk, and an urgent task to call Bob")
    assert reply["fallback_used"] is False
    assert tasks(server)[before:] == [("Buy milk", "normal"), ("Call Bob", "urgent")]
    assert [c["tool"] for c in reply["tool_calls"]] == ["create_task", "create_task"]
    assert "{" not in reply["message"] and "tool_call" not in reply["message"], reply["message"]
    texts = assistant_texts(server, reply["thread_id"])
    assert not any("{" in t or "tool_call" in t for t in texts), texts


def test_a_streamed_answer_never_shows_the_written_call(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    before = len(tasks(server))
    fake.reset()
    fake.script(
        json_text(
            '```json\n{{"name": "create_task", "arguments": {{"title": "Water plants"}}}}\n```'
        ),
        text("{ }"),
        json_text('<tool_call>\n{"function": "task_summary", "arguments": {}}\n</tool_call>'),
        text("You have a few open tasks."),
    )
    events: list[tuple[str, Any]] = []
    thread_id: str | None = None
    for message in ("Add water plants", "How am I doing?"):
        body: dict[str, Any] = {"message": message}
        if thread_id:
            body["thread_id"] = thread_id
        with httpx.stream("POST", f"{server.url}/chat/stream", json=body, timeout=60) as response:
            assert response.status_code == 200
            events += [(e.event, e.json()) for e in EventSource(response).iter_sse() if e.data]
        thread_id = next(data["thread_id"] for kind, data in events if kind == "metadata")
    assert tasks(server)[before:] == [("Water plants", "normal")]
    assert [data["tool"] for kind, data in events if kind == "tool_call"] == [
        "create_task",
        "task_summary",
    ]
    shown = "".join(data["text"] for kind, data in events if kind == "token")
    # The first turn's "{ }" is no answer: the user is told what its call did instead.
    assert shown.startswith("Done: created TASK-") and '"Water plants"' in shown, shown
    assert shown.endswith("You have a few open tasks."), shown
    assert "{" not in shown and "tool_call" not in shown, shown
