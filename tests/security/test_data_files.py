"""What the server leaves on disk and in its log: private files, no SQL parameters."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import httpx
import pytest

from tests.integration.conftest import REPO, LiveServer, offline_env

pytestmark = pytest.mark.integration


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_is_0700_and_every_file_in_it_0600(tmp_path):
    data = tmp_path / "data"
    added = subprocess.run(
        [sys.executable, "-m", "server.cli", "keys", "add", "--user", "alice"],
        cwd=REPO,
        env=offline_env(data),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    key = next(w for w in added.stdout.split() if w.startswith("tak_"))
    assert key.startswith("tak_")
    # A directory and a database left readable by everyone (as earlier versions made them).
    data.chmod(0o755)
    (data / "keys.json").chmod(0o644)

    server = LiveServer(data)
    try:
        made = httpx.post(
            f"{server.url}/chat",
            json={"message": "add a task to renew the passport"},
            headers={"X-Api-Key": key},
            timeout=60,
        )
        assert made.status_code == 200, made.text
        files = sorted(p.name for p in data.iterdir())
        # Checked while the server runs: the WAL and shared-memory files exist now.
        assert {"tasks.sqlite", "tasks.sqlite-wal", "tasks.sqlite-shm", "keys.json"} <= set(files)
        assert mode(data) == 0o700
        assert {name: oct(mode(data / name)) for name in files} == {
            name: oct(0o600) for name in files
        }
    finally:
        server.stop()


def test_debug_log_does_not_print_sql_parameters_or_streamed_text(tmp_path):
    title = "Zanzibar-quokka-4417 renewal"
    server = LiveServer(tmp_path / "data", env={"TASKAGENT_LOG_LEVEL": "DEBUG"})
    try:
        created = httpx.post(f"{server.url}/tasks", json={"title": title}, timeout=30)
        assert created.status_code == 201, created.text
        streamed = httpx.post(
            f"{server.url}/chat/stream", json={"message": "list my tasks"}, timeout=60
        )
        assert title in streamed.text  # the user sees it; the log must not
    finally:
        log = server.stop()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    quiet = ("aiosqlite", "sse_starlette")
    assert [r for r in records if r["logger"].startswith(quiet) and r["level"] == "DEBUG"] == []
    assert [r for r in records if r["logger"].startswith(quiet) and "Zanzibar" in str(r)] == []
