"""Secrets and the system prompt never leave the real server: not sent, stored, logged, traced.

A fake OpenAI-compatible model (real HTTP, answers streamed three characters at a time, so
every secret is split across chunks at awkward places) repeats the configured keys and a line
of the system prompt; another answers 401 with an error text echoing the key, as OpenAI does.
Every place a user, an operator or LangSmith can read is searched for them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from graph.prompts import system_prompt
from tests.fakes.langsmith_receiver import LangSmithReceiver
from tests.fakes.llm_servers import FakeOpenAIServer, status, text, tool_call
from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

# Neither has a known key shape: only the configured values can tell they are secrets.
OPENAI_KEY = "opk9Zx-plain-0123456789abcdef"
ALICE_KEY = "plainsecret123"
ALICE = {"Authorization": f"Bearer {ALICE_KEY}"}
LANGSMITH_KEY = "lsv2-local-redaction-key-98765"


def prompt_line() -> str:
    """The longest line of today's system prompt that JSON carries unescaped."""
    lines = [
        line
        for line in system_prompt(date.today()).splitlines()
        if "Today" not in line and line.isascii() and '"' not in line and "\\" not in line
    ]
    return max(lines, key=len).strip()


PROMPT_LINE = prompt_line()
REPLY = (
    f"Here you go. The key is {OPENAI_KEY}, the login is {ALICE_KEY}, and my instructions"
    f" say: {PROMPT_LINE} That is all for now, thanks for asking."
)


def leaks(text: str) -> list[str]:
    """The secrets (or a 30-character piece of the prompt line) found in `text`."""
    middle = PROMPT_LINE[len(PROMPT_LINE) // 2 - 15 : len(PROMPT_LINE) // 2 + 15]
    return [s for s in (OPENAI_KEY, ALICE_KEY, LANGSMITH_KEY, middle) if s in text]


def sse(raw: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of an SSE body."""
    body = httpx.Response(200, headers={"content-type": "text/event-stream"}, text=raw)
    return [(e.event, e.json()) for e in EventSource(body).iter_sse() if e.data]


def stream(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[str, httpx.Headers]:
    with client.stream(method, url, headers=ALICE | kwargs.pop("headers", {}), **kwargs) as reply:
        assert reply.status_code == 200, reply.read()
        return "".join(reply.iter_text()), reply.headers


def files(data: Path, prefix: str) -> str:
    """The raw bytes of a SQLite database and its journal files, as text."""
    return "".join(path.read_bytes().decode("utf-8", "replace") for path in data.glob(f"{prefix}*"))


def rows(db: Path, sql: str) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return json.dumps(conn.execute(sql).fetchall())


@pytest.fixture
def model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(default=text(REPLY), chunk_size=3) as server:
        yield server


def test_streamed_answers_events_state_logs_and_audit_carry_no_secret(
    tmp_path: Path, model: FakeOpenAIServer
) -> None:
    # The model first writes the keys into a task, then answers with the keys and the prompt.
    # In the agent-protocol run it writes them into a tool call whose arguments stream in pieces.
    model.script(
        tool_call("create_task", {"title": f"rotate {OPENAI_KEY} for {ALICE_KEY}"}),
        text(REPLY),
        tool_call("create_task", {"title": f"note {OPENAI_KEY}", "description": PROMPT_LINE}),
    )
    env = {
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "TASKAGENT_API_KEYS": f"{ALICE_KEY}:alice:write",
        "LANGSMITH_API_KEY": LANGSMITH_KEY,
        "TASKAGENT_LOG_LEVEL": "DEBUG",
    }
    server = LiveServer(tmp_path / "data", env=env)
    seen: dict[str, str] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            raw, headers = stream(
                client, "POST", "/chat/stream", json={"message": "Add a task for the review"}
            )
            seen["/chat/stream"] = raw
            events = sse(raw)
            done = next(data for name, data in events if name == "done")
            tokens = "".join(data["text"] for name, data in events if name == "token")
            # The held-back tail loses and reorders nothing: the stream is the stored answer.
            assert tokens == done["message"]
            assert tokens.startswith("Here you go. The key is [redacted], the login is [redacted]")
            assert tokens.endswith("That is all for now, thanks for asking.")
            seen["chat rejoin"], _ = stream(
                client, "GET", headers["location"], headers={"Last-Event-ID": "1"}
            )
            chat_thread = done["thread_id"]

            thread = client.post("/threads", json={}, headers=ALICE).json()["thread_id"]
            run = {
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "What did you do?"}]},
                "stream_mode": ["messages-tuple", "values"],
            }
            raw, headers = stream(client, "POST", f"/threads/{thread}/runs/stream", json=run)
            seen["messages-tuple and values"] = raw
            events = sse(raw)
            chunks = [data[0] for name, data in events if name == "messages"]
            # What a client assembles from the streamed tool-call argument pieces.
            pieces = [call for c in chunks for call in c.get("tool_call_chunks", [])]
            seen["messages-tuple tool-call arguments"] = "".join(
                str(call.get("args") or "") for call in pieces
            )
            assert "[redacted]" in seen["messages-tuple tool-call arguments"]
            answer = [c["id"] for c in chunks if c["type"] == "AIMessageChunk"][-1]
            streamed = "".join(c["content"] for c in chunks if c["id"] == answer)
            final = [name_data for name_data in events if name_data[0] == "values"][-1][1]
            assert streamed == final["messages"][-1]["content"]
            assert streamed.endswith("That is all for now, thanks for asking.")
            seen["agent rejoin"], _ = stream(
                client, "GET", headers["location"], headers={"Last-Event-ID": "1"}
            )
            for thread_id in (chat_thread, thread):
                state = client.get(f"/threads/{thread_id}/state", headers=ALICE)
                seen[f"state of {thread_id}"] = state.text
                assert state.status_code == 200 and "[redacted]" in state.text
    finally:
        seen["server log"] = server.stop()
    data = tmp_path / "data"
    seen["run_events"] = rows(data / "runs.sqlite", "SELECT event, data FROM run_events")
    seen["audit"] = rows(data / "tasks.sqlite", "SELECT * FROM audit")
    seen["tasks"] = rows(data / "tasks.sqlite", "SELECT * FROM tasks")
    seen["checkpoints"] = files(data, "checkpoints.sqlite")

    assert "[redacted]" in seen["audit"] and "[redacted]" in seen["tasks"]
    assert {where: leaks(text) for where, text in seen.items() if leaks(text)} == {}
    assert len(model.chat_requests) >= 3  # the real model answered every turn


def test_a_provider_error_echoing_the_key_is_scrubbed_everywhere(tmp_path: Path) -> None:
    receiver = LangSmithReceiver()
    echo = (
        f"Incorrect API key provided: {OPENAI_KEY}. You can find your API key at"
        " https://platform.openai.com/account/api-keys."
    )
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "TASKAGENT_API_KEYS": f"{ALICE_KEY}:alice:write",
        "TASKAGENT_MODEL_MAX_ATTEMPTS": "1",
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_ENDPOINT": receiver.url,
        "LANGSMITH_API_KEY": LANGSMITH_KEY,
        "LANGSMITH_PROJECT": "taskagent-redaction",
    }
    seen: dict[str, str] = {}
    with FakeOpenAIServer(default=status(401, message=echo)) as model:
        server = LiveServer(tmp_path / "data", env={**env, "OPENAI_BASE_URL": model.base_url})
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                raw, _ = stream(
                    client, "POST", "/chat/stream", json={"message": "Add a task to water plants"}
                )
                seen["/chat/stream"] = raw
                done = next(data for name, data in sse(raw) if name == "done")
                # The turn fell back, and says why, without the key the provider echoed.
                assert done["fallback_used"] is True
                assert any("Incorrect API key provided: [redacted]" in f for f in done["failures"])
                state = client.get(f"/threads/{done['thread_id']}/state", headers=ALICE)
                seen["state"] = state.text
                assert "Incorrect API key provided" in state.text
                # A key written by a client (no model involved) is not kept in the audit trail.
                task = client.post(
                    "/tasks", json={"title": f"rotate key {ALICE_KEY} today"}, headers=ALICE
                )
                assert task.status_code == 201, task.text
            deadline = time.monotonic() + 20
            while "Incorrect API key provided" not in receiver.raw():
                assert time.monotonic() < deadline, "the failed model call was never traced"
                time.sleep(0.2)
        finally:
            seen["server log"] = server.stop()
            receiver.close()
    assert len(model.chat_requests) >= 1
    seen["langsmith"] = receiver.raw()
    seen["audit"] = rows(tmp_path / "data" / "tasks.sqlite", "SELECT * FROM audit")
    seen["checkpoints"] = files(tmp_path / "data", "checkpoints.sqlite")
    assert "rotate key [redacted] today" in seen["audit"]
    assert {where: leaks(text) for where, text in seen.items() if leaks(text)} == {}
