"""`taskagent --url … --api-key …` against a real server, and the /tasks routes it uses."""

import json
import re
import socket
import threading

import httpx
import pytest
from typer.testing import CliRunner

from server.cli.main import app
from tests.integration.conftest import LiveServer, free_port

pytestmark = pytest.mark.integration

# One user per test, so the request budget (and any state) of one test never touches another.
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
KEYS = {user: f"{user}-key-0123456789" for user in USERS}
ROLES = {"bob": "read"}
RPM = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    keys = ",".join(f"{KEYS[u]}:{u}:{ROLES.get(u, 'write')}" for u in USERS)
    live = LiveServer(
        tmp_path_factory.mktemp("remote"),
        env={
            "TASKAGENT_API_KEYS": f"{keys},ops-key-0123456789:ops:admin",
            "TASKAGENT_RATE_LIMIT_RPM": str(RPM),
        },
    )
    yield live
    live.stop()


@pytest.fixture(autouse=True)
def no_local_connection(monkeypatch, tmp_path):
    for name in ("TASKAGENT_URL", "TASKAGENT_API_KEY", "TASKAGENT_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    # Remote commands must not need (or touch) a local database.
    monkeypatch.setenv("TASKAGENT_DATA_DIR", str(tmp_path / "unused"))


def cli(server, user, *args, input=None, code=0):
    result = CliRunner().invoke(
        app, [*args, "--url", server.url, "--api-key", KEYS[user]], input=input
    )
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def api(server, user):
    return httpx.Client(base_url=server.url, headers={"X-Api-Key": KEYS[user]}, timeout=30)


def test_chat_one_shot_threads_and_history_over_http(server):
    first = cli(server, "alice", "chat", "-m", "create a high priority task to call the bank")
    assert "→ create_task" in first.output and "✓ TASK-" in first.output
    match = re.search(r"model: offline-engine · thread ([0-9a-f-]{36})", first.output)
    assert match, first.output
    thread = match.group(1)

    threads = json.loads(cli(server, "alice", "threads", "--json").stdout)
    assert [t["thread_id"] for t in threads] == [thread]
    session = cli(server, "alice", "chat", "--thread", thread, input="/history\n/health\n/quit\n")
    assert "you> create a high priority task to call the bank" in session.output
    assert "offline-engine: breaker closed" in session.output

    turn = json.loads(cli(server, "alice", "chat", "-m", "list my tasks", "--json").stdout)
    assert turn["tool_calls"][0]["tool"] == "list_tasks"
    assert turn["tool_calls"][0]["result"]["tasks"][0]["title"] == "Call the bank"
    # Another user sees none of it.
    assert json.loads(cli(server, "carol", "threads", "--json").stdout) == []
    missing = cli(server, "carol", "chat", "--thread", thread, code=1)
    assert f"Thread {thread} not found. (404)" in missing.output


def test_inline_approval_over_http(server):
    added = json.loads(cli(server, "dave", "tasks", "add", "old report", "--json").stdout)
    task_id = added["id"]
    kept = cli(server, "dave", "chat", "-m", f"delete {task_id}", input="n\n")
    assert f"✗ The user rejected deleting {task_id}; it was kept." in kept.output
    deleted = cli(server, "dave", "chat", "-m", f"delete {task_id}", input="y\n")
    assert f'Delete {task_id} "old report"? [y/N]' in deleted.output
    assert f"✓ {task_id} deleted" in deleted.output
    listed = json.loads(cli(server, "dave", "tasks", "list", "--json").stdout)
    assert listed == {"count": 0, "total": 0, "more": None, "tasks": []}


def test_tasks_add_list_done_delete_over_http(server, monkeypatch):
    monkeypatch.setenv("TASKAGENT_URL", server.url)
    monkeypatch.setenv("TASKAGENT_API_KEY", KEYS["erin"])
    runner = CliRunner()
    added = runner.invoke(app, ["tasks", "add", "Renew the passport", "-p", "urgent", "--json"])
    assert added.exit_code == 0, added.output
    task = json.loads(added.stdout)
    assert task["priority"] == "urgent"
    listing = runner.invoke(app, ["tasks", "list", "--priority", "urgent"])
    assert task["id"] in listing.output and "Renew the passport" in listing.output
    done = runner.invoke(app, ["tasks", "done", task["id"], "--json"])
    assert json.loads(done.stdout)["status"] == "completed"
    deleted = runner.invoke(app, ["tasks", "delete", task["id"], "--yes"])
    assert f'Deleted {task["id"]} "Renew the passport"' in deleted.output
    with api(server, "erin") as http:
        assert http.get("/tasks").json() == {"count": 0, "total": 0, "more": None, "tasks": []}


def test_bad_key_read_role_and_unreachable_server_are_one_clear_line(server):
    bad = CliRunner().invoke(app, ["threads", "--url", server.url, "--api-key", "wrong"])
    assert bad.exit_code == 1
    assert bad.output.strip() == (
        f"The server at {server.url} refused the API key (401): pass a valid key with"
        " --api-key or TASKAGENT_API_KEY."
    )
    denied = cli(server, "bob", "tasks", "add", "sneaky", code=1)
    assert denied.output.strip() == "Your role (read) is not allowed to call create_task. (403)"
    assert json.loads(cli(server, "bob", "tasks", "list", "--json").stdout)["count"] == 0
    down = f"http://127.0.0.1:{free_port()}"
    refused = CliRunner().invoke(app, ["tasks", "list", "--url", down])
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        f"Cannot connect to {down}: is `taskagent serve` running there?"
    )


def test_rate_limit_is_reported_with_retry_after(server):
    with api(server, "frank") as http:
        statuses = [http.get("/tasks").status_code for _ in range(RPM)]
    assert statuses == [200] * RPM
    limited = cli(server, "frank", "tasks", "list", code=1)
    assert re.fullmatch(
        r"Rate limit reached for frank: try again in \d+ s\. \(429; retry after \d+ s\)",
        limited.output.strip(),
    )


def test_tasks_routes_authenticate_scope_and_validate(server):
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.get("/tasks").status_code == 401
        assert anonymous.post("/tasks", json={"title": "x"}).status_code == 401
    with api(server, "carol") as carol, api(server, "alice") as alice, api(server, "bob") as bob:
        created = carol.post("/tasks", json={"title": "carol's secret", "due_date": "tomorrow"})
        assert created.status_code == 201, created.text
        task = created.json()
        assert task["due_date"] and task["status"] == "pending"
        path = f"/tasks/{task['id']}"

        # Someone else's task does not exist for them: not readable, completable or deletable.
        for response in (
            alice.get(path),
            alice.post(f"{path}/complete"),
            alice.delete(path),
        ):
            assert response.status_code == 404, response.text
            assert response.json() == {"detail": f"Task {task['id']} not found."}
        assert all(t["id"] != task["id"] for t in alice.get("/tasks").json()["tasks"])
        assert bob.delete(path).status_code == 403  # read role: refused before any look-up
        assert bob.post("/tasks", json={"title": "x"}).status_code == 403
        assert carol.get(path).json()["title"] == "carol's secret"

        for bad in (
            carol.post("/tasks", json={}),
            carol.post("/tasks", json={"title": "x", "priority": "asap"}),
            carol.post("/tasks", json={"title": "x", "owner": "alice"}),
            carol.post("/tasks", json={"title": "x", "due_date": "someday"}),
            carol.get("/tasks", params={"status": "bogus"}),
            carol.get("/tasks", params={"limit": 0}),
            carol.get("/tasks/not-a-task"),
        ):
            assert bad.status_code == 422, bad.text
            assert isinstance(bad.json()["detail"], str)
        assert carol.get("/tasks/TASK-99999").status_code == 404

        assert carol.post(f"{path}/complete").json()["status"] == "completed"
        assert carol.delete(path).json() == {"deleted": {"id": task["id"], "title": task["title"]}}
        assert carol.get(path).status_code == 404

    with (
        api(server, "carol") as carol,
        httpx.Client(
            base_url=server.url, headers={"X-Api-Key": "ops-key-0123456789"}, timeout=30
        ) as ops,
    ):
        rows = ops.get("/audit", params={"user": "carol", "tool": "delete_task"}).json()
        assert [(r["kind"], r["success"]) for r in rows] == [("tool", True)]
        assert rows[0]["detail"]["via"] == "tasks_api"
        denied = ops.get("/audit", params={"user": "bob", "kind": "denied"}).json()
        assert {r["tool"] for r in denied} >= {"create_task", "delete_task"}


class CuttingProxy:
    """A TCP relay to the server that drops the first chat stream right after its first token."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.cuts = 0
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
                if answers and self.cuts == 0 and b"event: token" in chunk:
                    self.cuts += 1
                    break
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_dropped_stream_is_rejoined_without_losing_or_repeating_text(server):
    direct = json.loads(cli(server, "alice", "chat", "-m", "help", "--json").stdout)["message"]
    proxy = CuttingProxy(server.port)
    try:
        result = CliRunner().invoke(
            app, ["chat", "-m", "help", "--url", proxy.url, "--api-key", KEYS["alice"]]
        )
    finally:
        proxy.close()
    assert result.exit_code == 0, result.output
    assert proxy.cuts == 1 and proxy.connections == 2  # the POST, then the rejoin
    answer = result.output.split("agent> ", 1)[1].split("\n  model: ")[0]
    assert answer == direct
