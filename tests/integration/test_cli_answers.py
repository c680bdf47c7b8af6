"""`taskagent chat` prints the answer the turn delivered, not merely the tokens it streamed.

A scripted OpenAI-compatible fake on loopback plays the configured model: its claim with
no tool call behind it is withdrawn, its refusal falls back to the offline engine. What the
user reads is the terminal output, in a pipe (CliRunner) and under a real pseudo-terminal.
"""

import re
import sqlite3
import sys
from collections.abc import Iterator

import pexpect  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from graph.settings import get_settings
from server.cli.main import app
from tests.fakes.llm_servers import FakeOpenAIServer, status, text
from tests.integration.conftest import REPO, offline_env

pytestmark = pytest.mark.integration

NO_CALL = "I didn't change anything: no tool was called to do it in this turn."
FALLBACK = "(The configured model openai:gpt-4o-mini didn't answer"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def cli_env(tmp_path, monkeypatch, fake):
    for name in ("OLLAMA_BASE_URL", "OPENAI_API_KEY", "TASKAGENT_URL", "TASKAGENT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("TASKAGENT_MODEL_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("TASKAGENT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def chat(message: str) -> str:
    result = CliRunner().invoke(app, ["chat", "-m", message])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_withdrawn_claim_is_not_printed_only_the_honest_answer(cli_env, fake):
    fake.script(text("I deleted the task: TASK-0999."), text("It has been deleted."))
    out = chat("delete it")
    assert f"agent> {NO_CALL}" in out.splitlines()
    assert "I deleted the task" not in out and "It has been deleted" not in out


def test_the_fallback_sentence_is_printed(cli_env, fake):
    fake.script(status(400, message="context too long"))
    out = chat("add a task to water the plants")
    assert f"agent> {FALLBACK} — refused the request (HTTP 400)" in out
    assert 'Created TASK-0001 "Water the plants"' in out
    assert "model: offline-engine (fallback)" in out
    with sqlite3.connect(cli_env / "tasks.sqlite") as conn:
        assert conn.execute("SELECT title FROM tasks").fetchall() == [("Water the plants",)]


def test_a_terminal_shows_the_delivered_answer_in_place_of_the_withdrawn_one(tmp_path, fake):
    fake.script(text("I deleted the task: TASK-0999."), text("It has been deleted."))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "server.cli", "chat", "-m", "delete it"],
        cwd=str(REPO),
        env=offline_env(
            tmp_path,
            TERM="xterm-256color",
            OPENAI_BASE_URL=fake.base_url,
            TASKAGENT_MODEL_MAX_ATTEMPTS="1",
        ),
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=60,
    )
    try:
        child.expect(pexpect.EOF)
        shown = child.before
    finally:
        child.close()
    last = _last_frame(str(shown))
    assert NO_CALL in last
    assert "deleted" not in last


def _last_frame(raw: str) -> str:
    """What a live display left on the screen: its last frame, after its last redraw."""
    shown = raw.rsplit("\x1b[?25h", 1)[0]  # the cursor comes back when the display stops
    return re.split(r"(?:\x1b\[2K\x1b\[1A)*\x1b\[2K", shown)[-1]
