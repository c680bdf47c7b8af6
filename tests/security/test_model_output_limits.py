"""A model reply over TASKAGENT_MAX_MODEL_OUTPUT_CHARS, through a real server on loopback.

A model (broken, or steered by an injection) answers with a create_task call whose title is
5 MB. LangChain assembles streamed tool-call arguments in quadratic time, so before the
limit such a reply held the server's event loop for minutes: the turn never ended and
/health stalled. Now the reply is cut off while it streams: the turn ends at once saying
why, nothing runs, the thread's saved state stays small, and the tier is not blamed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.obedient import ObedientOpenAIServer
from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

HUGE = "add the huge task"
TITLE = "g" * 5_000_000


@pytest.fixture(scope="module")
def model() -> Iterator[ObedientOpenAIServer]:
    with ObedientOpenAIServer() as server:
        server.teach(HUGE, [("create_task", {"title": TITLE})])
        server.teach("add milk", [("create_task", {"title": "Milk"})])
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model: ObedientOpenAIServer
) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("output") / "data",
        env={
            "OPENAI_BASE_URL": model.base_url,
            "OPENAI_MODEL": "obedient",
            "TASKAGENT_MODEL_TIMEOUT_S": "20",
        },
    )
    yield live
    live.stop()


def task_titles(data_dir: Path) -> list[str]:
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return [row[0] for row in db.execute("SELECT title FROM tasks")]


def chat_while_probing_health(server: LiveServer, message: str) -> dict[str, Any]:
    """POST /chat; meanwhile /health must keep answering within a second."""
    result: dict[str, Any] = {}

    def turn() -> None:
        try:
            reply = httpx.post(f"{server.url}/chat", json={"message": message}, timeout=15)
            result["reply"] = reply
        except httpx.HTTPError as exc:
            result["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=turn, daemon=True)
    worker.start()
    while worker.is_alive():
        probe = time.monotonic()
        health = httpx.get(f"{server.url}/health", timeout=2)
        assert health.status_code == 200
        assert time.monotonic() - probe < 1.0, "the server stalled during the turn"
        time.sleep(0.1)
    worker.join()
    assert "error" not in result, result
    reply: httpx.Response = result["reply"]
    assert reply.status_code == 200, reply.text
    assert time.monotonic() - started < 10, "the turn took too long"
    return dict(reply.json())


@pytest.mark.parametrize(
    "chunk_size",
    [64, 1_000_000],
    ids=["many-small-stream-chunks", "few-megabyte-stream-chunks"],
)
def test_a_5_mb_tool_call_is_discarded_quickly_and_nothing_runs(
    server: LiveServer, model: ObedientOpenAIServer, chunk_size: int
) -> None:
    model.chunk_size = chunk_size
    answer = chat_while_probing_health(server, HUGE)

    assert "too long" in answer["message"] and "nothing was done" in answer["message"]
    assert answer["tool_calls"] == []
    assert answer["model_used"] == "openai:obedient"
    assert task_titles(server.data_dir) == []
    state = httpx.get(f"{server.url}/threads/{answer['thread_id']}/state", timeout=10)
    assert state.status_code == 200
    assert len(state.content) < 100_000, len(state.content)


def test_oversized_replies_do_not_open_the_tiers_breaker(
    server: LiveServer, model: ObedientOpenAIServer
) -> None:
    model.chunk_size = 4096
    for _ in range(4):  # more than TASKAGENT_BREAKER_THRESHOLD (3) in a row
        answer = chat_while_probing_health(server, HUGE)
        assert "too long" in answer["message"]
    answer = chat_while_probing_health(server, "add milk")
    assert answer["model_used"] == "openai:obedient", answer
    assert task_titles(server.data_dir) == ["Milk"]
