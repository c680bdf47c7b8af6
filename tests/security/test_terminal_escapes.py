"""Task text never drives a terminal: refused on input, printed literally on output.

A title can set the window title (ESC]0;), hide a link (OSC 8), clear the screen (ESC[2J),
reorder what a reader sees (U+202E) or be read as Rich markup by the CLI.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing

import httpx
import pexpect  # type: ignore[import-untyped]
import pytest

from tests.integration.conftest import REPO, LiveServer, offline_env

pytestmark = pytest.mark.integration

MARKUP = "[bold red]x[/] quarterly"
HOSTILE = (
    "[bold red]x[/] \x1b]0;pwned\x07 \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \x1b[2J report"
)


def tasks_in_db(server: LiveServer) -> list[tuple[str, str, str]]:
    with closing(sqlite3.connect(server.data_dir / "tasks.sqlite")) as conn:
        return list(conn.execute("SELECT title, description, tags FROM tasks"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("refusing") / "data")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A server holding a task written before titles were checked (TASK-0002)."""
    live = LiveServer(tmp_path_factory.mktemp("planted") / "data")
    fields = {"title": MARKUP, "description": "line one\n\tline two"}
    made = httpx.post(f"{live.url}/tasks", json=fields, timeout=30)
    assert made.status_code == 201, made.text
    made = httpx.post(f"{live.url}/tasks", json={"title": "placeholder"}, timeout=30)
    assert made.status_code == 201, made.text
    with closing(sqlite3.connect(live.data_dir / "tasks.sqlite")) as conn, conn:
        conn.execute(
            "UPDATE tasks SET title = ?, description = ? WHERE id = 'TASK-0002'", (HOSTILE, HOSTILE)
        )
    yield live
    live.stop()


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "nul \x00 byte"},
        {"title": "invoice \u202efdp.exe"},
        {"title": "isolate \u2066x\u2069"},
        {"title": HOSTILE},
        {"title": "fine", "description": "clear \x1b[2J screen"},
        {"title": "fine", "tags": ["ok", "bell\x07"]},
    ],
)
def test_control_and_bidi_characters_are_refused_at_the_api(server, fields):
    answer = httpx.post(f"{server.url}/tasks", json=fields, timeout=30)
    assert answer.status_code == 422
    assert "control or bidirectional-override characters" in answer.json()["detail"]
    assert tasks_in_db(server) == []


def test_newlines_and_markup_brackets_are_ordinary_text(planted):
    # Stored as sent through the API (TASK-0001); TASK-0002 was planted behind its back.
    assert tasks_in_db(planted)[0] == (MARKUP, "line one\n\tline two", "[]")


def cli(server: LiveServer, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--url", server.url],
        cwd=REPO,
        env=offline_env(server.data_dir.parent / "client"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_cli_prints_task_text_literally_without_escapes(planted):
    server = planted
    listed = cli(server, "tasks", "list")
    shown = cli(server, "tasks", "show", "2")
    chatted = cli(server, "chat", "-m", "list my tasks")
    for output in (listed, shown, chatted):
        assert "\x1b" not in output and "\x07" not in output
    assert "[bold red]x[/]" in listed and "[bold red]x[/]" in shown
    assert "pwned" in listed  # the words are shown, only the control bytes are gone
    assert "TASK-0002" in chatted and "pwned" in chatted


def test_the_cli_in_a_terminal_sends_no_title_link_or_clear_screen(planted):
    server = planted
    child = pexpect.spawn(
        sys.executable,
        ["-m", "server.cli", "tasks", "list", "--url", server.url],
        cwd=str(REPO),
        env=offline_env(server.data_dir.parent / "client", TERM="xterm-256color"),
        encoding="utf-8",
        dimensions=(40, 200),
        timeout=60,
    )
    try:
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert "TASK-0002" in output and "[bold red]x[/]" in output
    # Rich's own colours (ESC[…m) are fine; a window title, a hyperlink or a clear-screen are not.
    assert "\x1b]" not in output and "\x1b[2J" not in output and "\x07" not in output
