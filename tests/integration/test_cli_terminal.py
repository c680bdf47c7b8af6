"""`taskagent chat` as people use it, under a real pseudo-terminal, local and over HTTP.

Ctrl+C stops the answer being written (its run is cancelled, no task is half-made) and the
chat goes on; threads are numbered, opened by number or by a few characters of their id;
anyone's words are printed as typed; a deletion is answered at the prompt. Outcomes are
judged from the data dir's databases.
"""

import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect  # type: ignore[import-untyped]
import pytest

from tests.fakes.llm_servers import FakeOpenAIServer, tool_calls
from tests.integration.conftest import REPO, LiveServer, offline_env

pytestmark = pytest.mark.integration

THREAD_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MARKUP = "<b>bold</b> **x** [red]x[/red]"
ANSI = r"(?:\x1b\[[0-9;]*m)*"
# On a loaded machine the two turns before `/threads` can take longer than "just now" (45 s).
RECENTLY = r"(?:just now|\d+ min ago)"
# Streamed in 4-character pieces every 0.15 s: about 3 s of text before the tool call.
SLOW_PREAMBLE = "Sure, let me put that on your list straight away, one moment while I do it."


def spawn(data_dir: Path, *args: str, **env: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "server.cli", *args],
        cwd=str(REPO),
        env=offline_env(data_dir, TERM="xterm-256color", **env),
        encoding="utf-8",
        dimensions=(40, 160),
        timeout=60,
    )


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        env=offline_env(data_dir, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def tasks_in(data_dir: Path) -> dict[str, str]:
    with sqlite3.connect(data_dir / "tasks.sqlite") as conn:
        return dict(conn.execute("SELECT id, title FROM tasks"))


def run_statuses(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "runs.sqlite") as conn:
        return [row[0] for row in conn.execute("SELECT status FROM runs ORDER BY created_at")]


def quit_chat(child: pexpect.spawn) -> None:
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.fixture
def slow_model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(chunk_delay_s=0.15) as server:
        yield server


def _stop_mid_answer(child: pexpect.spawn, data_dir: Path, slow_model: FakeOpenAIServer) -> None:
    """Ask for a task, press Ctrl+C while the answer streams, and check nothing was made."""
    slow_model.script(tool_calls(("create_task", {"title": "Buy milk"}), content=SLOW_PREAMBLE))
    child.expect("you>")
    child.sendline("add a task to buy milk")
    child.expect("let me put")  # the answer is streaming
    started = time.monotonic()
    child.sendintr()
    child.expect("Stopped: the answer was cancelled.", timeout=10)
    child.expect("you>")
    # Past the moment the model would have asked for the task (about 3 s of text).
    time.sleep(max(0.0, 4.0 - (time.monotonic() - started)))
    assert tasks_in(data_dir) == {}
    assert run_statuses(data_dir)[-1] == "interrupted"
    # The chat goes on, on the same thread.
    child.sendline("/threads")
    child.expect(r"1 thread\(s\)")
    child.expect("you>")
    child.sendline("hello again")
    child.expect(r"model: openai:gpt-4o-mini · thread " + THREAD_ID)
    child.expect("you>")
    assert run_statuses(data_dir)[-1] == "success"
    assert tasks_in(data_dir) == {}


def test_ctrl_c_stops_the_answer_and_keeps_the_chat(tmp_path, slow_model):
    child = spawn(
        tmp_path,
        "chat",
        OPENAI_BASE_URL=slow_model.base_url,
        TASKAGENT_MODEL_MAX_ATTEMPTS="1",
    )
    try:
        _stop_mid_answer(child, tmp_path, slow_model)
        quit_chat(child)
    finally:
        child.close()


def test_ctrl_c_stops_the_answer_of_a_server(tmp_path, slow_model):
    data_dir = tmp_path / "server"
    server = LiveServer(
        data_dir,
        env={"OPENAI_BASE_URL": slow_model.base_url, "TASKAGENT_MODEL_MAX_ATTEMPTS": "1"},
    )
    child = spawn(tmp_path / "client", "chat", "--url", server.url)
    try:
        _stop_mid_answer(child, data_dir, slow_model)
        quit_chat(child)
    finally:
        child.close()
        server.stop()


def test_threads_are_numbered_and_opened_inside_the_chat(tmp_path):
    first = re.search(THREAD_ID, cli(tmp_path, "chat", "-m", "add a task to water the plants"))
    second = re.search(THREAD_ID, cli(tmp_path, "chat", "-m", "add a task to call mum"))
    assert first and second
    child = spawn(tmp_path, "chat")
    try:
        child.expect("you>")
        child.sendline("/threads")
        # Most recent first, numbered, titled, with a time people read.
        child.expect(r"2 thread\(s\)")
        child.expect(rf"1\s+{second.group()}\s+{ANSI}{RECENTLY}{ANSI}\s+\S")
        child.expect(rf"2\s+{first.group()}\s+{ANSI}{RECENTLY}{ANSI}\s+\S")
        child.expect("you>")
        child.sendline("/open 2")
        child.expect(f"Switched to thread {first.group()}")
        child.expect("you> add a task to water the plants")  # its history
        child.expect("you>")
        child.sendline("/open 9")
        child.expect("There is no thread 9: /threads lists 1 to 2.")
        child.expect("you>")
        child.sendline("what are my tasks?")
        child.expect(f"thread {first.group()}")  # the turn ran on the opened thread
        child.expect("you>")
        child.sendline(f"/open {second.group()[:6]}")
        child.expect(f"Switched to thread {second.group()}")
        child.expect("you> add a task to call mum")
        child.expect("you>")
        child.sendline("/help")
        child.expect(r"Ctrl\+C while an answer streams stops it")
        child.expect("you>")
        quit_chat(child)
    finally:
        child.close()


def test_a_thread_id_prefix_resumes_it_locally_and_over_http(tmp_path):
    server = LiveServer(tmp_path)
    digits = "98761234-0000-4000-8000-000000000003"  # an id that starts like a number
    try:
        twins = [f"abcd{n}234-0000-4000-8000-00000000000{n}" for n in (1, 2)]
        for thread_id in (*twins, digits):
            created = httpx.post(f"{server.url}/threads", json={"thread_id": thread_id})
            assert created.status_code == 200, created.text
        for where in ((), ("--url", server.url)):
            out = cli(tmp_path, "chat", *where, "--thread", "abcd1", "-m", "list my tasks")
            assert f"Resuming thread {twins[0]}" in out
            assert f"thread {twins[0]}" in out.splitlines()[-1]
            ambiguous = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "server.cli",
                    "chat",
                    *where,
                    "--thread",
                    "abcd",
                    "-m",
                    "hi",
                ],
                cwd=REPO,
                env=offline_env(tmp_path, COLUMNS="300"),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ambiguous.returncode == 1
            message = ambiguous.stderr.strip()
            assert len(message.splitlines()) == 1, message
            assert twins[0] in message and twins[1] in message, message
            assert "Traceback" not in ambiguous.stderr
    finally:
        server.stop()
    child = spawn(tmp_path, "chat")
    try:
        child.expect("you>")
        child.sendline("/threads")
        child.expect("3 thread\\(s\\)")
        child.expect("you>")
        child.sendline("/open 98761")
        child.expect(f"Switched to thread {digits}")
        child.expect("you>")
        quit_chat(child)
    finally:
        child.close()
    # Nothing was sent to either twin by the refused command.
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        assert conn.execute(
            "SELECT count(*) FROM runs WHERE thread_id = ?", (twins[1],)
        ).fetchone() == (0,)


def test_task_titles_and_answers_are_printed_as_typed(tmp_path):
    cli(tmp_path, "tasks", "add", MARKUP)
    child = spawn(tmp_path, "chat")
    try:
        child.expect("you>")
        child.sendline("list my tasks")
        child.expect(r"✓ 1 task")
        child.expect(re.escape(MARKUP))
        child.expect("you>")
        child.sendline("/history")
        child.expect(re.escape(MARKUP))
        child.expect("you>")
        quit_chat(child)
    finally:
        child.close()
    assert tasks_in(tmp_path) == {"TASK-0001": MARKUP}


def test_an_approval_is_answered_at_the_prompt(tmp_path):
    cli(tmp_path, "tasks", "add", "Buy milk")
    child = spawn(tmp_path, "chat")
    try:
        child.expect("you>")
        child.sendline("delete TASK-0001")
        child.expect(r'Delete TASK-0001 "Buy milk"\?.*\[y/N\]')
        child.sendline("n")
        child.expect("you>")
        assert tasks_in(tmp_path) == {"TASK-0001": "Buy milk"}

        child.sendline("delete TASK-0001")
        child.expect(r"\[y/N\]")
        child.sendline("maybe")
        child.expect(r"Answer y \(yes\) or n \(no\)\.")
        child.sendintr()  # not now: the deletion keeps waiting
        child.expect("Still waiting for your answer")
        child.expect("you>")
        assert tasks_in(tmp_path) == {"TASK-0001": "Buy milk"}
        child.sendline("yes")
        child.expect("✓ TASK-0001 deleted")
        child.expect("you>")
        quit_chat(child)
    finally:
        child.close()
    assert tasks_in(tmp_path) == {}
