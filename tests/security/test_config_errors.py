"""Configuration errors: one line naming the variable and the fix, a non-zero exit, no hang.

Every command is run as a user runs it (`python -m server.cli.main …` in a subprocess, on a fresh
data directory); an unreachable model is reported once at start-up and in `/health`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REPO, LiveServer, free_port, offline_env

pytestmark = pytest.mark.integration

TIMEOUT_S = 60
# (variable, bad value): a bad number, a bad enum, bad JSON, a bad key entry.
BAD_SETTINGS = [
    ("PORT", "eighty"),
    ("TASKAGENT_LOG_FORMAT", "xml"),
    ("TASKAGENT_LOG_LEVEL", "loud"),
    ("TASKAGENT_MODEL_TIMEOUT_S", "-1"),
    ("TASKAGENT_PRICES", '{"openai:gpt-4o-mini": '),
    ("TASKAGENT_SQLITE_SYNCHRONOUS", "sometimes"),
    ("TASKAGENT_FORWARDED_ALLOW_IPS", "proxy"),
    ("TASKAGENT_AUDIT_RETENTION_DAYS", "forever"),
]
COMMANDS = {
    "serve": ["serve", "--port", "0"],
    "chat -m": ["chat", "-m", "list my tasks"],
    "chat": ["chat"],
    "mcp": ["mcp"],
}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


# Each bad setting through one command, every command in turn (kept short: each run is a
# fresh interpreter).
CASES = [(*bad, list(COMMANDS)[i % len(COMMANDS)]) for i, bad in enumerate(BAD_SETTINGS)]


@pytest.mark.parametrize(("variable", "value", "command"), CASES)
def test_a_bad_setting_is_one_line_naming_it(tmp_path, variable, value, command):
    result = run_cli(COMMANDS[command], offline_env(tmp_path / "data", **{variable: value}))
    assert result.returncode != 0
    line = one_line(result)
    assert variable in line and "fix" in line
    assert not (tmp_path / "data").exists()  # nothing was started


@pytest.mark.parametrize("command", ["serve", "mcp"])
def test_a_bad_api_key_entry_is_one_line(tmp_path, command):
    env = offline_env(tmp_path / "data", TASKAGENT_API_KEYS="k-alice-0000:alice")
    result = run_cli(COMMANDS[command], env)
    assert result.returncode != 0
    assert "TASKAGENT_API_KEYS" in one_line(result)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unusable_data_dir_is_one_line(tmp_path, command):
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where the data directory should be")
    result = run_cli(COMMANDS[command], offline_env(not_a_dir))
    assert result.returncode != 0
    line = one_line(result)
    assert "TASKAGENT_DATA_DIR" in line and str(not_a_dir) in line


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["serve", "--port", str(port)], offline_env(tmp_path / "data"))
    assert result.returncode != 0
    line = one_line(result)
    assert f"127.0.0.1:{port}" in line and "PORT" in line


def test_empty_model_variables_are_unset(tmp_path):
    # `OPENAI_API_KEY=` exported, or uncommented from .env.example: the tier is simply absent.
    empty = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "OLLAMA_BASE_URL": ""}
    result = run_cli(["chat", "-m", "list my tasks"], offline_env(tmp_path / "data", **empty))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model: offline-engine" in result.stdout and "Traceback" not in result.stderr

    server = LiveServer(tmp_path / "served", env=empty)
    try:
        tiers = httpx.get(f"{server.url}/health", timeout=10).json()["tiers"]
        assert [tier["name"] for tier in tiers] == ["offline"]
    finally:
        log = server.stop()
    assert "Traceback" not in log


def test_an_unreachable_model_is_reported_once_and_in_health(tmp_path: Path):
    closed = f"http://127.0.0.1:{free_port()}"
    server = LiveServer(tmp_path / "data", env={"OLLAMA_BASE_URL": closed})
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            ollama = client.get("/health").json()["tiers"][0]
            assert ollama["name"] == "ollama" and ollama["status"] == "unreachable"
            assert ollama["reason"] == "Connection refused"
            for _ in range(2):
                answer = client.post("/chat", json={"message": "list my tasks"}).json()
                assert answer["model_used"] == "offline-engine" and answer["fallback_used"]
            streamed = client.post("/chat/stream", json={"message": "list my tasks"})
            assert "event: done" in streamed.text
    finally:
        log = server.stop()
    assert "Traceback" not in log
    startup = [line for line in log.splitlines() if "unreachable" in line]
    assert len(startup) == 1 and closed in startup[0] and "Connection refused" in startup[0]


@pytest.mark.parametrize("command", ["serve", "chat -m", "mcp"])
def test_a_data_dir_from_a_newer_taskagent_is_one_line_and_left_alone(tmp_path, command):
    import sqlite3
    from contextlib import closing

    data = tmp_path / "data"
    data.mkdir()
    with closing(sqlite3.connect(data / "runs.sqlite")) as db:
        db.execute("CREATE TABLE schema_versions (store TEXT PRIMARY KEY, version INTEGER)")
        db.execute("INSERT INTO schema_versions VALUES ('runs', 99)")
        db.commit()
    result = run_cli(COMMANDS[command], offline_env(data))
    assert result.returncode != 0
    line = one_line(result)
    assert "TASKAGENT_DATA_DIR" in line and "schema version 99" in line and "upgrade" in line
    with closing(sqlite3.connect(data / "runs.sqlite")) as db:
        assert db.execute("SELECT version FROM schema_versions").fetchall() == [(99,)]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"schema_versions"}  # nothing was created in it
