"""The whole chain through the runner: real ChatOllama / ChatOpenAI clients against fake peers."""

import json
import time

import pytest

from graph.context import Context
from graph.services import Services
from models.providers import build_tiers
from server.runs.engine import RunManager
from tests.conftest import make_settings
from tests.fakes.llm_servers import (
    FakeOllamaServer,
    FakeOpenAIServer,
    hang,
    json_text,
    refused_url,
    status,
    text,
    tool_call,
    tool_call_raw,
)
from tools.store import TaskStore

pytestmark = pytest.mark.integration

ME = Context(user_id="alice", role="write")


@pytest.fixture
def peers():
    with FakeOllamaServer() as ollama, FakeOpenAIServer() as openai:
        yield ollama, openai


async def open_chain(tmp_path, ollama_url: str, openai_url: str, **overrides) -> RunManager:
    settings = make_settings(
        tmp_path,
        ollama_base_url=ollama_url,
        ollama_model="tiny",
        openai_base_url=openai_url,
        openai_model="small",
        model_max_attempts=2,
        **overrides,
    )
    tasks = await TaskStore.open(settings.tasks_db)
    return await RunManager.open(
        settings, services=Services(settings=settings, tiers=build_tiers(settings), tasks=tasks)
    )


async def test_ollama_500s_fall_back_to_openai_which_calls_a_tool(tmp_path, peers):
    ollama, openai = peers
    ollama.script(status(500), status(500))
    openai.script(
        tool_call("create_task", {"title": "Pay rent", "priority": "high"}),
        text("Created TASK-0001."),
    )
    runner = await open_chain(tmp_path, ollama.url, openai.base_url)
    try:
        result = await runner.run_turn(context=ME, message="add pay rent, high priority")
        assert result.model_used == "openai:small" and result.fallback_used is True
        assert result.message == (
            "(The configured model ollama:tiny didn't answer — had a server error (HTTP 500) —"
            " so openai:small answered.)\n\nCreated TASK-0001."
        )
        assert "ollama:tiny" in result.failures[0]
        assert len(ollama.chat_requests) == 2  # retried once (max attempts 2), then fell back
        task = await runner.runner.services.tasks.get("alice", "TASK-0001")
        assert task is not None and task["priority"] == "high"
        assert set(openai.chat_requests[0].tool_names) == {
            "create_task",
            "list_tasks",
            "get_task",
            "update_task",
            "complete_task",
            "delete_task",
            "task_summary",
        }
    finally:
        await runner.close()


async def test_everything_down_ends_on_the_offline_engine(tmp_path, peers):
    ollama, _ = peers
    ollama.script(hang(5), hang(5))
    runner = await open_chain(tmp_path, ollama.url, refused_url(), model_timeout_s=0.3)
    try:
        result = await runner.run_turn(
            context=ME,
            message="Create a high-priority task for the quarterly review due next Friday",
        )
        assert result.model_used == "offline-engine" and result.fallback_used is True
        assert len(result.failures) == 2
        assert "NodeTimeoutError" in result.failures[0] and "openai:small" in result.failures[1]
        assert "TASK-0001" in result.message
    finally:
        await runner.close()


async def test_client_error_is_not_retried_and_falls_through(tmp_path, peers):
    ollama, openai = peers
    ollama.script(status(400, message="model not found"))
    openai.script(text("hello from openai"))
    runner = await open_chain(tmp_path, ollama.url, openai.base_url)
    try:
        result = await runner.run_turn(context=ME, message="status report please")
        assert result.message.endswith(
            "— refused the request (HTTP 400) — so openai:small answered.)\n\nhello from openai"
        )
        assert len(ollama.chat_requests) == 1
    finally:
        await runner.close()


async def test_rate_limit_waits_for_retry_after_then_succeeds(tmp_path, peers):
    ollama, openai = peers
    ollama.script(status(429, retry_after=0.2), text("after the pause"))
    runner = await open_chain(tmp_path, ollama.url, openai.base_url)
    try:
        result = await runner.run_turn(context=ME, message="anything new?")
        assert result.message == "after the pause" and result.fallback_used is False
        first, second = ollama.chat_requests[:2]
        assert second.received_at - first.received_at >= 0.2
    finally:
        await runner.close()


async def test_json_text_tool_call_from_a_small_model_becomes_a_real_call(tmp_path, peers):
    ollama, openai = peers
    ollama.script(
        json_text(
            {"name": "create_task", "arguments": {"title": "Water plants", "priority": "low"}}
        ),
        text("Done: TASK-0001."),
    )
    runner = await open_chain(tmp_path, ollama.url, openai.base_url)
    try:
        result = await runner.run_turn(context=ME, message="add water plants, low priority")
        assert result.model_used == "ollama:tiny" and result.fallback_used is False
        assert result.tool_calls[0]["tool"] == "create_task"
        task = await runner.runner.services.tasks.get("alice", "TASK-0001")
        assert task is not None and task["title"] == "Water plants"
    finally:
        await runner.close()


async def test_malformed_arguments_go_back_to_the_same_model_not_a_weaker_tier(tmp_path, peers):
    ollama, openai = peers
    ollama.script(status(500), status(500))
    openai.script(
        tool_call_raw("create_task", '{"title": "Broken" "priority": }'),
        tool_call("create_task", {"title": "Fixed"}),
        text("Created it."),
    )
    runner = await open_chain(tmp_path, ollama.url, openai.base_url)
    try:
        result = await runner.run_turn(context=ME, message="add a task")
        assert result.model_used == "openai:small"
        rejected = result.tool_calls[0]["result"]
        assert rejected["ok"] is False and "not valid JSON" in rejected["error"]
        # The model saw the rejection and corrected itself on the same tier.
        second_prompt = openai.chat_requests[1].body["messages"]
        assert "not valid JSON" in json.dumps(second_prompt)
        task = await runner.runner.services.tasks.get("alice", "TASK-0001")
        assert task is not None and task["title"] == "Fixed"
        assert await runner.runner.services.tasks.count() == 1
    finally:
        await runner.close()


async def test_a_retry_after_beyond_the_limit_moves_to_the_next_tier_at_once(tmp_path, peers):
    ollama, openai = peers
    ollama.script(status(429, retry_after=120))
    openai.script(text("openai answers instead"))
    runner = await open_chain(tmp_path, ollama.url, openai.base_url, retry_after_max_s=1.0)
    try:
        started = time.monotonic()
        result = await runner.run_turn(context=ME, message="anything new?")
        assert result.message.endswith(
            "— rate-limited — so openai:small answered.)\n\nopenai answers instead"
        )
        assert result.fallback_used is True
        assert len(ollama.chat_requests) == 1
        assert "asked to retry after 120 s" in result.failures[0]
        assert time.monotonic() - started < 5
    finally:
        await runner.close()
