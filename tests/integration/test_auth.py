"""API keys, roles and ownership through the real server."""

import subprocess
import sys

import httpx
import pytest

from tests.integration.conftest import REPO, LiveServer, db_rows, offline_env, serve

pytestmark = pytest.mark.integration

KEYS = "k-alice-0000:alice:write,k-bob-00000:bob:write,k-rita-0000:rita:read,k-root-0000:root:admin"
ALICE = {"X-Api-Key": "k-alice-0000"}
BOB = {"Authorization": "Bearer k-bob-00000"}
RITA = {"X-Api-Key": "k-rita-0000"}
ROOT = {"X-Api-Key": "k-root-0000"}


@pytest.fixture
def keyed_server(tmp_path):
    server = serve(tmp_path / "data", env={"TASKAGENT_API_KEYS": KEYS})
    yield server
    server.stop()


def chat(
    client: httpx.Client, headers: dict[str, str], message: str, thread: str | None = None
) -> httpx.Response:
    body = {"message": message} | ({"thread_id": thread} if thread else {})
    return client.post("/chat", json=body, headers=headers)


def test_missing_or_wrong_key_is_401_and_audited(keyed_server):
    with httpx.Client(base_url=keyed_server.url, timeout=30) as client:
        assert client.get("/health").status_code == 200  # probes stay open
        missing = client.post("/chat", json={"message": "list my tasks"})
        assert missing.status_code == 401 and "X-Api-Key" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        assert chat(client, {"X-Api-Key": "nope"}, "hi").status_code == 401
        assert chat(client, {"Authorization": "Bearer k-alice-0001"}, "hi").status_code == 401
        rows = client.get("/audit", params={"kind": "login_failed"}, headers=ROOT).json()
        # Repeats from one client within a minute are one row with a count (issue 10).
        assert len(rows) == 1 and rows[0]["user"] == "?" and rows[0]["detail"]["count"] == 3
        assert "k-alice" not in str(rows)  # keys are never logged
    log = keyed_server.stop()
    assert "k-alice-0001" not in log and "k-alice-0000" not in log


def test_threads_and_tasks_belong_to_their_user(keyed_server):
    with httpx.Client(base_url=keyed_server.url, timeout=30) as client:
        made = chat(client, ALICE, "add a task to renew the passport").json()
        assert made["tool_calls"][0]["result"]["task"]["id"] == "TASK-0001"
        # bob cannot see alice's thread, run or task: 404, not 403
        assert chat(client, BOB, "list my tasks", made["thread_id"]).status_code == 404
        assert client.get(f"/threads/{made['thread_id']}", headers=BOB).status_code == 404
        assert client.get(f"/chat/runs/{made['run_id']}/stream", headers=BOB).status_code == 404
        stolen = chat(client, BOB, "delete TASK-0001").json()
        assert stolen["interrupt"] is None
        assert "not found" in stolen["tool_calls"][0]["result"]["error"]
        assert chat(client, BOB, "list my tasks").json()["tool_calls"][0]["result"]["count"] == 0
        bobs = {t["thread_id"] for t in client.get("/chat/threads", headers=BOB).json()}
        assert stolen["thread_id"] in bobs and made["thread_id"] not in bobs


def test_read_role_cannot_write_and_admin_can_reach_everyone(keyed_server):
    with httpx.Client(base_url=keyed_server.url, timeout=30) as client:
        chat(client, ALICE, "add a task to renew the passport")
        tried = chat(client, RITA, "add a task to hack the planet").json()
        assert tried["tool_calls"] == [] or tried["tool_calls"][0]["result"]["ok"] is False
        admin = chat(client, ROOT, "show TASK-0001").json()
        assert admin["tool_calls"][0]["result"]["task"]["title"].lower().startswith("renew")
        assert client.get("/audit", headers=ALICE).status_code == 403
        tools = client.get("/audit", params={"kind": "tool"}, headers=ROOT).json()
        assert {r["user"] for r in tools} == {"alice", "root"}
    assert db_rows(keyed_server, "tasks.sqlite", "SELECT owner, title FROM tasks") == [
        ("alice", "Renew the passport")
    ]


def test_keys_file_holds_only_digests_and_works(tmp_path):
    env = offline_env(tmp_path / "data")
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "keys",
            "add",
            "--user",
            "carol",
            "--role",
            "write",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = next(line for line in made.stdout.splitlines() if line.startswith("tak_"))
    stored = (tmp_path / "data" / "keys.json").read_text()
    assert key not in stored and "carol" in stored
    server = LiveServer(tmp_path / "data")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert chat(client, {}, "list my tasks").status_code == 401
            assert chat(client, {"X-Api-Key": key}, "list my tasks").status_code == 200
    finally:
        server.stop()


def test_public_interface_needs_keys(tmp_path):
    refused = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=REPO,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "taskagent keys add" in refused.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "1"],
        cwd=REPO,
        env=offline_env(tmp_path, TASKAGENT_API_KEYS="justakey"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "<key>:<user>:<role>" in bad.stderr


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    env = {"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_RATE_LIMIT_RPM": "2"}
    server = LiveServer(tmp_path / "data", env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            codes = [client.get("/chat/threads", headers=ALICE).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
            limited = client.get("/chat/threads", headers=ALICE)
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            assert "try again" in limited.json()["detail"]
            assert client.get("/chat/threads", headers=BOB).status_code == 200  # per user
    finally:
        server.stop()
