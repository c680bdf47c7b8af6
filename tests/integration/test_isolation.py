"""Two apps (and two runners) in one process: each uses its own models, database and limits.

Nothing a request or a node reads may come from a process-wide global: an app serves its
turns with the model tiers, task store and settings it was created with, even while another
app with other settings serves turns in the same event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph.builder import build_graph
from graph.context import Context
from graph.services import LazyServices
from graph.settings import Settings
from server.app import create_app
from server.runs.engine import RunManager
from tests.fakes.llm_servers import FakeOpenAIServer, text, tool_call

pytestmark = pytest.mark.integration


def settings_for(data_dir: Path, **values: Any) -> Settings:
    """Settings of one app: its own data dir; everything else as given, nothing from the env."""
    values.setdefault("model_max_attempts", 1)
    values.setdefault("model_timeout_s", 10.0)
    return Settings(_env_file=None, data_dir=data_dir, **values)


def with_model(data_dir: Path, fake: FakeOpenAIServer, model: str, **values: Any) -> Settings:
    """Settings whose first tier is the fake OpenAI-compatible server `fake`, named `model`."""
    return settings_for(
        data_dir,
        openai_base_url=fake.base_url,
        openai_api_key="sk-test",
        openai_model=model,
        **values,
    )


def task_titles(data_dir: Path) -> list[str]:
    """The titles in the task database under `data_dir`, as a user would list them."""
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return [row[0] for row in conn.execute("SELECT title FROM tasks ORDER BY seq")]


def thread_count(data_dir: Path) -> int:
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM threads").fetchone()[0])


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and give a client that talks to it over ASGI."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=30
        ) as client:
            yield client


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    with FakeOpenAIServer() as alpha, FakeOpenAIServer() as beta:
        yield alpha, beta


async def test_two_apps_serve_concurrent_turns_with_their_own_model_and_database(
    tmp_path: Path, fakes: tuple[FakeOpenAIServer, FakeOpenAIServer]
) -> None:
    alpha, beta = fakes
    alpha.script(tool_call("create_task", {"title": "Alpha report"}), text("Alpha filed it."))
    beta.script(tool_call("create_task", {"title": "Beta report"}), text("Beta filed it."))
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    app_a = create_app(with_model(dir_a, alpha, "model-a", max_message_chars=60))
    app_b = create_app(with_model(dir_b, beta, "model-b", max_message_chars=4000))
    async with serving(app_a) as client_a, serving(app_b) as client_b:
        # Both apps are open before either answers: the later one must not take over the first.
        answer_a, answer_b = await asyncio.gather(
            client_a.post("/chat", json={"message": "Create a task called Alpha report"}),
            client_b.post("/chat", json={"message": "Create a task called Beta report"}),
        )
        assert answer_a.status_code == 200, answer_a.text
        assert answer_b.status_code == 200, answer_b.text
        assert answer_a.json()["message"] == "Alpha filed it."
        assert answer_a.json()["model_used"] == "openai:model-a"
        assert answer_b.json()["message"] == "Beta filed it."
        assert answer_b.json()["model_used"] == "openai:model-b"

        # A's limit is 60 characters, B's 4000: the same message is A's to refuse, B's to serve.
        long_message = "Create a task called " + "quarterly numbers " * 5
        assert len(long_message) > 60
        beta.script(text("Beta read it all."))
        refused = await client_a.post("/chat", json={"message": long_message})
        accepted = await client_b.post("/chat", json={"message": long_message})
        assert refused.status_code == 422
        assert refused.json() == {
            "detail": f"message has {len(long_message)} characters; the limit is 60."
        }
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["message"] == "Beta read it all."

    assert task_titles(dir_a) == ["Alpha report"]
    assert task_titles(dir_b) == ["Beta report"]
    assert thread_count(dir_a) == 1  # the refused message left no thread behind
    assert len(alpha.chat_requests) == 2 and len(beta.chat_requests) == 3


async def test_each_app_bounds_metadata_and_pings_streams_by_its_own_settings(
    tmp_path: Path,
) -> None:
    # The offline engine, slowed down, so the stream stays open long enough to be pinged.
    slow = {"offline_first_token_delay_ms": 900.0}
    app_a = create_app(settings_for(tmp_path / "a", max_metadata_bytes=64, sse_ping_s=0.2, **slow))
    app_b = create_app(
        settings_for(tmp_path / "b", max_metadata_bytes=16_384, sse_ping_s=60, **slow)
    )
    metadata = {"project": "x" * 100}
    async with serving(app_a) as client_a, serving(app_b) as client_b:
        refused = await client_a.post("/threads", json={"metadata": metadata})
        accepted = await client_b.post("/threads", json={"metadata": metadata})
        assert refused.status_code == 422
        assert refused.json() == {
            "detail": "metadata: metadata is 115 bytes of JSON; the limit is 64."
        }
        assert accepted.status_code == 200, accepted.text

        stream_a, stream_b = await asyncio.gather(
            client_a.post("/chat/stream", json={"message": "list my tasks"}),
            client_b.post("/chat/stream", json={"message": "list my tasks"}),
        )
    # A heartbeat is an SSE comment line; A pings every 0.2 s, B only once a minute.
    assert stream_a.status_code == 200 and stream_b.status_code == 200
    assert "event: done" in stream_a.text and "event: done" in stream_b.text
    pings_a = [line for line in stream_a.text.splitlines() if line.startswith(": ping")]
    pings_b = [line for line in stream_b.text.splitlines() if line.startswith(": ping")]
    assert len(pings_a) >= 2 and pings_b == []
    assert thread_count(tmp_path / "a") == 1 and thread_count(tmp_path / "b") == 2


async def test_two_engines_in_one_process_answer_with_their_own_model(
    tmp_path: Path, fakes: tuple[FakeOpenAIServer, FakeOpenAIServer]
) -> None:
    alpha, beta = fakes
    alpha.script(text("This is model A."))
    beta.script(text("This is model B."))
    me = Context(user_id="alice", role="write")
    async with AsyncExitStack() as stack:
        runner_a = await RunManager.open(with_model(tmp_path / "a", alpha, "model-a"))
        stack.push_async_callback(runner_a.close)
        runner_b = await RunManager.open(with_model(tmp_path / "b", beta, "model-b"))
        stack.push_async_callback(runner_b.close)
        answer_a, answer_b = await asyncio.gather(
            runner_a.run_turn(context=me, message="what should I do first?"),
            runner_b.run_turn(context=me, message="what should I do first?"),
        )
    assert (answer_a.message, answer_a.model_used) == ("This is model A.", "openai:model-a")
    assert (answer_b.message, answer_b.model_used) == ("This is model B.", "openai:model-b")
    assert len(alpha.chat_requests) == 1 and len(beta.chat_requests) == 1


async def test_graphs_built_at_import_open_their_own_services_on_first_use(
    tmp_path: Path,
) -> None:
    # The way langgraph.json's `graph` is built: no loop yet, so nothing may open until a
    # node runs; then each graph opens its own, from its own settings.
    lazy_a = LazyServices(settings_for(tmp_path / "a"))
    lazy_b = LazyServices(settings_for(tmp_path / "b"))
    graph_a = build_graph(lazy_a).compile(checkpointer=InMemorySaver())
    graph_b = build_graph(lazy_b).compile(checkpointer=InMemorySaver())
    assert not (tmp_path / "a" / "tasks.sqlite").exists()
    me = Context(user_id="alice", role="write")
    try:
        await asyncio.gather(
            graph_a.ainvoke(
                {"messages": [HumanMessage("Create a task called Alpha report")]},
                {"configurable": {"thread_id": "t"}},
                context=me,
            ),
            graph_b.ainvoke(
                {"messages": [HumanMessage("Create a task called Beta report")]},
                {"configurable": {"thread_id": "t"}},
                context=me,
            ),
        )
    finally:
        for lazy in (lazy_a, lazy_b):
            await (await lazy.get()).tasks.close()
    assert task_titles(tmp_path / "a") == ["Alpha report"]
    assert task_titles(tmp_path / "b") == ["Beta report"]
