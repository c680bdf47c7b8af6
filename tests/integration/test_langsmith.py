"""LangSmith tracing through the real `langsmith` client, posting to a local receiver."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.langsmith_receiver import LangSmithReceiver
from tests.integration.conftest import LiveServer, free_port

pytestmark = pytest.mark.integration

ALICE_KEY = "tak_alice-trace-key-0001"
LANGSMITH_KEY = "lsv2-local-test-key-123456"
LEAKY = "sk-live-1234567890abcdef"


@pytest.fixture
def receiver() -> Iterator[LangSmithReceiver]:
    server = LangSmithReceiver()
    yield server
    server.close()


def langsmith_env(receiver: LangSmithReceiver, **extra: str) -> dict[str, str]:
    return {
        "LANGSMITH_ENDPOINT": receiver.url,
        "LANGSMITH_API_KEY": LANGSMITH_KEY,
        "LANGSMITH_PROJECT": "taskagent-test",
        "TASKAGENT_API_KEYS": f"{ALICE_KEY}:alice:write",
        **extra,
    }


def chat(server: LiveServer, message: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.url}/chat",
        json={"message": message},
        headers={"Authorization": f"Bearer {ALICE_KEY}", "X-Request-ID": "trace-req-1"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def finished_root(receiver: LangSmithReceiver, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for run in receiver.runs():
            metadata = (run.get("extra") or {}).get("metadata") or {}
            if run.get("name") == "taskagent turn" and metadata.get("run_id") == run_id:
                if run.get("end_time") and run.get("outputs"):
                    return run
        time.sleep(0.2)
    raise AssertionError(f"no finished root run for {run_id}: {receiver.runs()}")


def test_a_turn_is_one_trace_with_filterable_metadata_and_no_secrets(tmp_path, receiver):
    # Ollama is configured but down, so the offline engine answers as a fallback.
    env = langsmith_env(
        receiver,
        LANGSMITH_TRACING="true",
        OLLAMA_BASE_URL=f"http://127.0.0.1:{free_port()}",
        TASKAGENT_MODEL_MAX_ATTEMPTS="1",
    )
    server = LiveServer(tmp_path / "data", env=env)
    try:
        answer = chat(server, f"create a task to rotate {LEAKY} tomorrow, my key is {ALICE_KEY}")
        assert answer["fallback_used"] is True
        root = finished_root(receiver, answer["run_id"])
    finally:
        server.stop()

    metadata = root["extra"]["metadata"]
    assert metadata["thread_id"] == answer["thread_id"]
    assert metadata["user"] == "alice"
    assert metadata["role"] == "write"
    assert metadata["model_tier"] == "offline"
    assert metadata["fallback_used"] is True
    assert metadata["request_id"] == "trace-req-1"
    assert {"user:alice", "role:write", "tier:offline", "fallback"} <= set(root["tags"])
    assert root["outputs"]["model_used"] == "offline-engine"

    # The graph's nodes and model calls nest under the root in the same trace.
    trace = [run for run in receiver.runs() if run.get("trace_id") == root["id"]]
    names = {run.get("name") for run in trace}
    assert {"agent", "guard_input", "router", "model_call", "tool_execute"} <= names
    assert any(run.get("run_type") == "llm" for run in trace)

    sent = receiver.raw()
    assert LEAKY not in sent
    assert ALICE_KEY not in sent
    assert LANGSMITH_KEY not in sent
    assert "[redacted]" in sent
    # The LangSmith key travels only as the client's auth header.
    keys = {
        {k.lower(): v for k, v in headers.items()}.get("x-api-key")
        for _, path, headers, _ in receiver.requests
        if path.startswith("/runs")
    }
    assert keys == {LANGSMITH_KEY}


def test_tracing_is_off_unless_switched_on(tmp_path, receiver):
    server = LiveServer(tmp_path / "data", env=langsmith_env(receiver))
    try:
        chat(server, "add a task to water the plants")
        time.sleep(2)
    finally:
        server.stop()
    assert receiver.requests == []
