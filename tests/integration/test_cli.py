"""`taskagent chat`: one-shot, interactive commands and resuming a thread by id."""

import re

import pytest
from typer.testing import CliRunner

from graph.settings import get_settings
from server.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    for name in ("OLLAMA_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKAGENT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def thread_of(output: str) -> str:
    match = re.search(r"thread ([0-9a-f-]{36})", output)
    assert match, output
    return match.group(1)


def test_one_shot_message_streams_tool_calls_and_model(cli_env):
    result = CliRunner().invoke(
        app, ["chat", "-m", "create an urgent task to renew the passport tomorrow"]
    )
    assert result.exit_code == 0, result.output
    assert "→ create_task" in result.output
    assert "TASK-0001" in result.output
    assert "model: offline-engine" in result.output


def test_resume_a_thread_by_id_and_use_the_slash_commands(cli_env):
    runner = CliRunner()
    first = runner.invoke(app, ["chat", "-m", "add a task to water the plants"])
    thread = thread_of(first.output)
    session = runner.invoke(
        app,
        ["chat", "--thread", thread],
        input="list my tasks\n/history\n/threads\n/health\n/new\n/quit\n",
    )
    assert session.exit_code == 0, session.output
    assert f"Resuming thread {thread}" in session.output
    assert "water the plants" in session.output.lower()
    assert "→ list_tasks" in session.output
    assert "offline-engine: breaker closed" in session.output
    assert "New thread." in session.output


def test_unknown_thread_is_a_clear_error(cli_env):
    result = CliRunner().invoke(app, ["chat", "--thread", "nope"])
    assert result.exit_code == 1
    assert "Thread nope not found." in result.output
