"""`taskagent` on the local database: chat, inline approvals, tasks, threads, --json, --help."""

import json
import re
import sqlite3

import pytest
from typer.testing import CliRunner

from graph.settings import get_settings
from server.cli.main import app

pytestmark = pytest.mark.integration

THREAD_ID = r"[0-9a-f-]{36}"


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    for name in ("OLLAMA_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TASKAGENT_URL", "TASKAGENT_API_KEY", "TASKAGENT_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKAGENT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str, input: str | None = None, code: int = 0):
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result


def thread_of(output: str) -> str:
    match = re.search(rf"thread ({THREAD_ID})", output)
    assert match, output
    return match.group(1)


def tasks_in_db(data_dir) -> dict[str, str]:
    with sqlite3.connect(data_dir / "tasks.sqlite") as conn:
        return dict(conn.execute("SELECT id, title FROM tasks"))


def test_one_shot_message_streams_tool_calls_and_model(cli_env):
    result = invoke("chat", "-m", "create an urgent task to renew the passport tomorrow")
    lines = result.output.splitlines()
    call = next(line for line in lines if "→ create_task" in line)
    assert 'title="Renew the passport"' in call and "priority=urgent" in call
    assert "  ✓ TASK-0001 created" in lines
    assert any(line.startswith("agent> Created TASK-0001") for line in lines)
    assert re.search(rf"model: offline-engine · thread {THREAD_ID}", result.output)
    assert tasks_in_db(cli_env) == {"TASK-0001": "Renew the passport"}


def test_resume_a_thread_by_id_and_use_the_slash_commands(cli_env):
    first = invoke("chat", "-m", "add a task to water the plants")
    thread = thread_of(first.output)
    session = invoke(
        "chat",
        "--thread",
        thread,
        input="list my tasks\n/history\n/threads\n/health\n/help\n/new\n/quit\n",
    )
    out = session.output
    assert f"Resuming thread {thread}" in out
    assert "you> add a task to water the plants" in out  # the history shown on resume
    assert "→ list_tasks" in out and "✓ 1 task" in out
    assert thread in out.split("thread(s)")[1]  # /threads lists it in full
    assert "offline-engine: breaker closed" in out
    assert "/history (this thread)" in out
    assert "New thread." in out


def test_unknown_thread_is_a_clear_error(cli_env):
    result = invoke("chat", "--thread", "nope", code=1)
    assert "Thread nope not found." in result.output
    assert "Traceback" not in result.output


def test_approving_a_deletion_inline_deletes_the_task(cli_env):
    invoke("tasks", "add", "water the plants")
    result = invoke("chat", "-m", "delete TASK-0001", input="y\n")
    assert 'Delete TASK-0001 "water the plants"? [y/N]' in result.output
    assert "✓ TASK-0001 deleted" in result.output
    assert tasks_in_db(cli_env) == {}


def test_refusing_a_deletion_inline_keeps_the_task(cli_env):
    invoke("tasks", "add", "water the plants")
    result = invoke("chat", "-m", "delete TASK-0001", input="n\n")
    assert "✗ The user rejected deleting TASK-0001; it was kept." in result.output
    assert tasks_in_db(cli_env) == {"TASK-0001": "water the plants"}


def test_one_shot_json_is_one_object_and_an_approval_can_be_answered_later(cli_env):
    invoke("tasks", "add", "water the plants")
    first = invoke("chat", "-m", "delete TASK-0001", "--json")
    turn = json.loads(first.stdout)
    assert turn["interrupt"]["task_id"] == "TASK-0001"
    assert turn["model_used"] == "offline-engine"
    assert [call["tool"] for call in turn["tool_calls"]] == ["delete_task"]
    assert re.fullmatch(THREAD_ID, turn["thread_id"]) and turn["run_id"]
    assert tasks_in_db(cli_env) == {"TASK-0001": "water the plants"}  # still waiting

    answer = json.loads(invoke("chat", "--thread", turn["thread_id"], "--approve", "--json").stdout)
    assert answer["interrupt"] is None
    assert answer["tool_calls"][0]["result"]["deleted"]["id"] == "TASK-0001"
    assert tasks_in_db(cli_env) == {}


def test_resuming_a_thread_that_waits_asks_its_approval_first(cli_env):
    invoke("tasks", "add", "water the plants", "--due", "next Friday")
    turn = json.loads(invoke("chat", "-m", "delete TASK-0001", "--json").stdout)
    session = invoke("chat", "--thread", turn["thread_id"], input="y\n/quit\n")
    assert 'Delete TASK-0001 "water the plants"? [y/N]' in session.output
    assert "✓ TASK-0001 deleted" in session.output
    assert tasks_in_db(cli_env) == {}


def test_tasks_add_list_done_and_delete(cli_env):
    added = invoke("tasks", "add", "Renew the passport", "-p", "urgent", "--due", "tomorrow")
    assert 'Created TASK-0001 "Renew the passport" (urgent, pending, due ' in added.output
    task = json.loads(
        invoke(
            "tasks", "add", "File taxes", "--description", "forms", "--tag", "home", "--json"
        ).stdout
    )
    assert task["id"] == "TASK-0002" and task["tags"] == ["home"] and task["priority"] == "normal"

    listing = invoke("tasks", "list").output
    assert "TASK-0001" in listing and "Renew the passport" in listing and "2 task(s)" in listing
    urgent = json.loads(invoke("tasks", "list", "--priority", "urgent", "--json").stdout)
    assert [t["id"] for t in urgent["tasks"]] == ["TASK-0001"] and urgent["count"] == 1
    found = json.loads(invoke("tasks", "list", "-q", "taxes", "--json").stdout)
    assert [t["title"] for t in found["tasks"]] == ["File taxes"]

    done = invoke("tasks", "done", "2").output  # a bare number is TASK-0002
    assert 'Completed TASK-0002 "File taxes" (normal, completed)' in done
    completed = json.loads(invoke("tasks", "list", "--status", "completed", "--json").stdout)
    assert [t["id"] for t in completed["tasks"]] == ["TASK-0002"]

    kept = invoke("tasks", "delete", "TASK-0001", input="n\n", code=1)
    assert 'Delete TASK-0001 "Renew the passport"?' in kept.output
    assert "Kept TASK-0001." in kept.output
    assert "TASK-0001" in tasks_in_db(cli_env)
    deleted = json.loads(invoke("tasks", "delete", "TASK-0001", "--yes", "--json").stdout)
    assert set(deleted) == {"deleted"}  # the task as it was, whole
    assert deleted["deleted"]["id"] == "TASK-0001"
    assert deleted["deleted"]["title"] == "Renew the passport"
    assert tasks_in_db(cli_env) == {"TASK-0002": "File taxes"}

    missing = invoke("tasks", "done", "TASK-0042", code=1)
    assert "Task TASK-0042 not found." in missing.output
    assert "No tasks match." in invoke("tasks", "list", "--status", "pending").output


def test_task_commands_go_through_the_audited_tool_path(cli_env):
    invoke("tasks", "add", "water the plants")
    invoke("tasks", "list")
    with sqlite3.connect(cli_env / "tasks.sqlite") as conn:
        rows = conn.execute(
            "SELECT kind, user, tool, success, result_summary, detail FROM audit ORDER BY id"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("tool", "local", "create_task", 1),
        ("tool", "local", "list_tasks", 1),
    ]
    assert rows[0][4] == "TASK-0001 pending"
    assert json.loads(rows[0][5])["via"] == "cli"


def test_bad_input_is_a_usage_error_or_a_clear_refusal(cli_env):
    assert "--status" in invoke("tasks", "list", "--status", "bogus", code=2).output
    assert "--priority" in invoke("tasks", "add", "x", "-p", "asap", code=2).output
    assert "needs -m" in invoke("chat", "--json", code=2).output
    assert "--thread" in invoke("chat", "--approve", code=2).output
    assert "not a URL" in invoke("threads", "--url", "localhost:8000", code=2).output
    bad_date = invoke("tasks", "add", "x", "--due", "someday", code=1)
    assert "Invalid due_date 'someday'" in bad_date.output
    assert tasks_in_db(cli_env) == {}


def test_threads_and_keys_list_as_json(cli_env):
    thread = thread_of(invoke("chat", "-m", "add a task to water the plants").output)
    threads = json.loads(invoke("threads", "--json").stdout)
    assert [t["thread_id"] for t in threads] == [thread]
    assert threads[0]["title"] == "Water the plants"  # summarised from the created task
    assert thread in invoke("threads").output

    key = invoke("keys", "add", "--user", "alice", "--role", "read").stdout.splitlines()[1]
    listed = invoke("keys", "list", "--json").stdout
    assert key.startswith("tak_") and key not in listed
    assert [(k["user"], k["role"]) for k in json.loads(listed)] == [("alice", "read")]


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (["chat"], ["--thread", "--message", "--approve", "--json", "--url", "--api-key"]),
        (["threads"], ["--json", "--url", "--api-key", "Example"]),
        (["tasks", "list"], ["--status", "--priority", "--query", "--overdue", "--limit"]),
        (["tasks", "add"], ["title", "--priority", "--due", "--description", "--tag", "--json"]),
        (["tasks", "show"], ["task_id", "--json", "--url"]),
        (["tasks", "done"], ["task_id", "--json", "--url"]),
        (["tasks", "delete"], ["task_id", "--yes", "--json", "--url", "Example"]),
        (["keys", "list"], ["--json"]),
        (["keys", "add"], ["--user", "--role", "--label"]),
        (["serve"], ["--host", "--port", "--workers"]),
    ],
)
def test_help_of_each_command_names_its_options(cli_env, command, options):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.output, (command, option)
