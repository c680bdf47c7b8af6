"""A small model's context budget: every turn of a long thread fits, so the model answers it.

One real server on loopback whose OpenAI tier is the fake OpenAI server playing a llama-server
with a 4,096-token context: it refuses (400) any prompt longer than that. Before the budget,
a long thread or one "show all my tasks" with 60 tasks overflowed it and the turn silently
fell back to the offline engine.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from tests.fakes.llm_servers import FakeOpenAIServer, Reply, text, tool_call
from tests.integration.conftest import LiveServer
from tools.authorization import tools_for
from tools.schemas import tool_definition

pytestmark = pytest.mark.integration

MODEL = "openai:local"
CONTEXT_TOKENS = 4096
RESERVED_TOKENS = 512
# Qwen2.5 reads this service's prompts at about 3.5 characters a token (1,785 tokens for
# 6,230 characters on llama-server). The fake counts only the `messages` JSON, so the tool
# definitions the client also sends are taken off what a 4,096-token context leaves.
TOOLS_CHARS = len(json.dumps([tool_definition(name) for name in tools_for("admin")]))
PROMPT_CHARS = int((CONTEXT_TOKENS - RESERVED_TOKENS) * 3.5) - TOOLS_CHARS
SEEDED = 60


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(max_prompt_chars=PROMPT_CHARS) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    fake: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_MODEL": "local",
        "TASKAGENT_OPENAI_CONTEXT_TOKENS": str(CONTEXT_TOKENS),
        "TASKAGENT_MODEL_TIMEOUT_S": "10",
    }
    live = LiveServer(tmp_path_factory.mktemp("budget") / "data", env=env)
    yield live
    live.stop()


def chat(server: LiveServer, message: str, thread_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if thread_id:
        body["thread_id"] = thread_id
    response = httpx.post(f"{server.url}/chat", json=body, timeout=60)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def task_titles(server: LiveServer) -> list[str]:
    uri = f"file:{server.data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return [row[0] for row in db.execute("SELECT title FROM tasks ORDER BY id")]


def test_a_long_thread_and_a_sixty_task_list_are_answered_by_the_small_model(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    for n in range(SEEDED):
        created = httpx.post(
            f"{server.url}/tasks",
            json={
                "title": f"Quarterly vendor review item {n:02d}",
                "description": "Collect the quotes, compare them and write up the decision.",
                "priority": "high" if n % 3 == 0 else "normal",
                "due_date": f"2027-01-{n % 28 + 1:02d}",
                "tags": ["work", "review"],
            },
            timeout=10,
        )
        assert created.status_code in (200, 201), created.text
    show_all = "Show all my tasks, please."
    turns: list[tuple[str, list[Reply]]] = [
        (show_all, [tool_call("list_tasks", {"limit": 100}), text("Here are all your tasks.")])
    ]
    for n in range(28):
        if n % 2 == 0:
            title = f"Follow-up call number {n} with the supplier about delivery dates"
            turns.append(
                (
                    f"Add a task: {title}.",
                    [tool_call("create_task", {"title": title}), text(f"Created '{title}'.")],
                )
            )
        else:
            turns.append((f"Thanks. What should I focus on next, step {n}?", [text("The review.")]))
    turns.append((show_all, [tool_call("list_tasks", {"limit": 100}), text("All of them.")]))
    assert len(turns) == 30

    thread_id = None
    for message, replies in turns:
        fake.script(*replies)
        reply = chat(server, message, thread_id)
        thread_id = reply["thread_id"]
        assert (reply["model_used"], reply["fallback_used"]) == (MODEL, False), reply["message"]
        assert reply["message"] == replies[-1].content
        assert fake.pending == 0

    requests = fake.chat_requests
    assert len(requests) == 30 + 16  # one call per turn, two for each turn that used a tool
    assert [r.behaviour for r in requests if not isinstance(r.behaviour, Reply)] == []
    for request in requests:
        assert request.body["temperature"] == 0.2
        assert request.body["max_completion_tokens"] == RESERVED_TOKENS
        assert len(json.dumps(request.body["messages"])) <= PROMPT_CHARS
    # The newest user message always goes whole, and the 74-task list reaches the model as
    # valid JSON: the true count, the ids and titles that fit, and a note saying so.
    titles = task_titles(server)
    assert len(titles) == SEEDED + 14
    last = requests[-1].body["messages"]
    assert last[0]["role"] == "system"
    assert [m["content"] for m in last if m["role"] == "user"][-1] == show_all
    listed = json.loads(last[-1]["content"])
    assert last[-1]["role"] == "tool" and listed["count"] == len(titles)
    shown = listed["tasks"]
    assert len(shown) >= len(titles) // 2
    assert {t["title"] for t in shown} <= set(titles)
    assert all(set(t) == {"id", "title"} for t in shown)
    assert f"{len(shown)} of {len(titles)} tasks" in listed["note"]


def test_a_message_that_cannot_fit_gets_a_clear_answer_not_a_fallback(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    fake.reset()
    # 3,900 digits: a token each, more than the 4,096-token context keeps free for them.
    reply = chat(server, "Remember this number: " + "7" * 3900, None)
    assert reply["fallback_used"] is False
    assert "too long for the model" in reply["message"]
    assert "Nothing was done" in reply["message"]
    assert fake.chat_requests == []


def test_a_context_too_small_for_the_tools_is_named_in_the_answer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with FakeOpenAIServer() as tiny:
        env = {
            "OPENAI_BASE_URL": tiny.base_url,
            "TASKAGENT_OPENAI_CONTEXT_TOKENS": "1024",
            "TASKAGENT_MODEL_TIMEOUT_S": "10",
        }
        live = LiveServer(tmp_path_factory.mktemp("tiny") / "data", env=env)
        try:
            reply = chat(live, "Add a task to buy milk", None)
        finally:
            live.stop()
        assert tiny.chat_requests == []
    assert "context of 1,024 tokens" in reply["message"]
    assert "TASKAGENT_OPENAI_CONTEXT_TOKENS" in reply["message"]
    assert reply["fallback_used"] is False and task_titles(live) == []
