"""`taskagent chat` under a real pseudo-terminal: live markdown, tool lines, inline approval."""

import sqlite3
import sys

import pexpect  # type: ignore[import-untyped]
import pytest

from tests.integration.conftest import REPO, offline_env

pytestmark = pytest.mark.integration


def test_chat_in_a_terminal(tmp_path):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "server.cli", "chat"],
        cwd=str(REPO),
        env=offline_env(tmp_path, TERM="xterm-256color"),
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=60,
    )
    try:
        child.expect("taskagent")
        child.expect("you>")
        child.sendline("create an urgent task to renew the passport tomorrow")
        child.expect("→ create_task")
        child.expect("✓ TASK-0001 created")
        child.expect('Created TASK-0001 "Renew the passport"')
        child.expect(r"model: offline-engine · thread [0-9a-f-]{36}")

        child.expect("you>")
        child.sendline("list my tasks")
        child.expect("✓ 1 task")
        # The answer's markdown list is rendered: "- TASK-0001" becomes a bullet.
        child.expect(r"• \x1b\[0mTASK-0001|• TASK-0001")

        child.expect("you>")
        child.sendline("delete TASK-0001")
        child.expect("→ delete_task")
        child.expect(r'Delete TASK-0001 "Renew the passport"\?.*\[y/N\]')
        child.sendline("y")
        child.expect("✓ TASK-0001 deleted")

        child.expect("you>")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    with sqlite3.connect(tmp_path / "tasks.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)


def test_ctrl_c_at_the_prompt_leaves_at_once(tmp_path):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "server.cli", "chat"],
        cwd=str(REPO),
        env=offline_env(tmp_path),
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect("you>")
        child.sendintr()
        child.expect(pexpect.EOF, timeout=10)  # no Enter needed
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in (child.before or "")
