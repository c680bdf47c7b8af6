"""LangGraph Studio's server: `langgraph dev` loads langgraph.json, and the stock SDK drives it.

The dev server gets our SQLite checkpointer from langgraph.json, so the same graph runs with the
same tools and task database as `taskagent serve`, and its threads outlive a dev-server restart.
"""

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.fakes.obedient import ObedientOpenAIServer
from tests.integration.conftest import REPO, free_port, offline_env

pytestmark = pytest.mark.integration

WRITER = {"user_id": "studio-user", "role": "write"}


class LanggraphDev:
    """`langgraph dev --no-browser` on loopback, run from a work dir outside the repository.

    langgraph dev resolves graph paths and writes `.langgraph_api/` relative to its cwd, so the
    test copies langgraph.json with the graph path made absolute; everything else (the
    checkpointer factory, env) is the file as committed.
    """

    def __init__(self, workdir: Path, data_dir: Path, **env: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = json.loads((REPO / "langgraph.json").read_text())
        config["dependencies"] = [str(REPO)]
        config["graphs"] = {
            name: str(REPO / spec.removeprefix("./")) for name, spec in config["graphs"].items()
        }
        (workdir / "langgraph.json").write_text(json.dumps(config))
        self.workdir = workdir
        self.data_dir = data_dir
        self.env = offline_env(
            data_dir,
            LANGSMITH_TRACING="false",
            LANGGRAPH_CLI_NO_ANALYTICS="1",
            LANGGRAPH_NO_VERSION_CHECK="true",
            **env,
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        cli = Path(sys.executable).parent / "langgraph"
        self.proc = subprocess.Popen(
            [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
            + ["--port", str(self.port), "--config", "langgraph.json"],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("langgraph dev exited:\n" + "".join(self.output[-40:]))
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("langgraph dev did not start:\n" + "".join(self.output[-40:]))

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Iterator[tuple[LanggraphDev, Path]]:
    root = tmp_path_factory.mktemp("studio")
    data_dir = root / "data"
    server = LanggraphDev(root / "work", data_dir)
    yield server, data_dir
    server.stop()


def tasks_in(data_dir: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(data_dir / "tasks.sqlite") as conn:
        return conn.execute("SELECT id, owner, title, status FROM tasks ORDER BY id").fetchall()


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def contents(values: Any) -> list[Any]:
    assert isinstance(values, dict)
    return [m["content"] for m in values["messages"]]


def last_ai(values: Any) -> str:
    assert isinstance(values, dict)
    return str([m for m in values["messages"] if m["type"] == "ai"][-1]["content"])


async def test_studio_shows_the_graph_and_a_context_form(studio):
    server, _ = studio
    client = get_client(url=server.url)
    [assistant] = await client.assistants.search(graph_id="agent")
    drawing = await client.assistants.get_graph(assistant["assistant_id"])
    nodes = {node["id"] for node in drawing["nodes"]}
    assert {"guard_input", "router", "model_call", "guard_tools", "tool_execute"} <= nodes
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    context_schema = schemas["context_schema"]
    assert context_schema is not None
    form = context_schema["properties"]
    assert form["role"]["enum"] == ["read", "write", "admin"]
    assert "read: look only" in form["role"]["description"]
    assert "ollama" in json.dumps(form["model_tier"])
    assert form["model_tier"]["description"]
    assert any(
        "Custom checkpointer" in line or "custom checkpointer" in line for line in server.output
    )


async def test_a_tool_calling_turn_then_approve_and_reject_interrupts(studio):
    server, data_dir = studio
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]

    created = await client.runs.wait(
        tid,
        "agent",
        input=human("create a high priority task to file taxes tomorrow"),
        context=WRITER,
    )
    assert "Created TASK-0001" in last_ai(created)
    assert tasks_in(data_dir) == [("TASK-0001", "studio-user", "File taxes", "pending")]

    await client.runs.wait(tid, "agent", input=human("delete TASK-0001"), context=WRITER)
    state = await client.threads.get_state(tid)
    assert state["next"] == ["guard_tools"]
    [pending] = state["interrupts"]
    assert pending["value"]["tool"] == "delete_task"
    assert pending["value"]["task_id"] == "TASK-0001"
    assert (await client.threads.get(tid))["status"] == "interrupted"

    rejected = await client.runs.wait(
        tid, "agent", command={"resume": {"approved": False}}, context=WRITER
    )
    assert "did not delete TASK-0001" in last_ai(rejected)
    assert [row[0] for row in tasks_in(data_dir)] == ["TASK-0001"]

    await client.runs.wait(tid, "agent", input=human("delete TASK-0001"), context=WRITER)
    approved = await client.runs.wait(
        tid, "agent", command={"resume": {"approved": True}}, context=WRITER
    )
    assert "Deleted TASK-0001" in last_ai(approved)
    assert tasks_in(data_dir) == []
    final = await client.threads.get_state(tid)
    assert final["next"] == []
    assert (await client.threads.get(tid))["status"] == "idle"

    # The checkpoints are ours (SQLite in the data dir), so the thread outlives a restart.
    server.stop()
    server.start()
    client = get_client(url=server.url)
    again = await client.threads.get_state(tid)
    assert contents(again["values"]) == contents(final["values"])
    listed = await client.runs.wait(tid, "agent", input=human("list my tasks"), context=WRITER)
    assert "You have no tasks yet" in last_ai(listed)


async def test_a_plain_answer_in_studio_never_approves_a_question_it_did_not_see(tmp_path):
    """Studio resumes with a bare {"approved": ...}: it answers the question shown, no other."""
    with ObedientOpenAIServer() as model:
        model.teach(
            "add two",
            [("create_task", {"title": "Keep me"}), ("create_task", {"title": "Old plan"})],
        )
        model.teach(
            "tidy up",
            [("delete_task", {"task_id": "TASK-0002"}), ("delete_task", {"task_id": "TASK-0001"})],
        )
        data_dir = tmp_path / "data"
        server = LanggraphDev(
            tmp_path / "work", data_dir, OPENAI_BASE_URL=model.base_url, OPENAI_MODEL="obedient"
        )
        try:
            client = get_client(url=server.url)
            tid = (await client.threads.create())["thread_id"]
            await client.runs.wait(tid, "agent", input=human("add two"), context=WRITER)
            assert [row[2] for row in tasks_in(data_dir)] == ["Keep me", "Old plan"]

            await client.runs.wait(tid, "agent", input=human("tidy up"), context=WRITER)
            [asked] = (await client.threads.get_state(tid))["interrupts"]
            assert asked["value"]["task_id"] == "TASK-0002"

            # The task asked about goes by another route before the user answers.
            with sqlite3.connect(data_dir / "tasks.sqlite") as conn:
                conn.execute("DELETE FROM tasks WHERE id = 'TASK-0002'")

            await client.runs.wait(
                tid, "agent", command={"resume": {"approved": True}}, context=WRITER
            )
            assert [row[0] for row in tasks_in(data_dir)] == ["TASK-0001"]
            [asked] = (await client.threads.get_state(tid))["interrupts"]
            assert asked["value"]["task_id"] == "TASK-0001"

            await client.runs.wait(
                tid, "agent", command={"resume": {"approved": False}}, context=WRITER
            )
            assert [row[0] for row in tasks_in(data_dir)] == ["TASK-0001"]
            assert (await client.threads.get_state(tid))["interrupts"] == []
        finally:
            server.stop()


async def test_studio_copies_a_thread_with_its_history_and_reports_nothing_degraded(studio):
    server, _ = studio
    # langgraph dev warns at start-up for each saver method it must do without.
    assert [line for line in server.output if "checkpointer missing" in line] == []
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(
        tid, "agent", input=human("create a task to water the plants"), context=WRITER
    )
    original = await client.threads.get_state(tid)
    # The SDK types `threads.copy` as returning None; the server's answer names the copy.
    copied: Any = await client.http.post(f"/threads/{tid}/copy", json=None)
    copy_id = copied["thread_id"]
    assert copy_id != tid
    assert contents((await client.threads.get_state(copy_id))["values"]) == contents(
        original["values"]
    )
    source_history = await client.threads.get_history(tid, limit=100)
    copy_history = await client.threads.get_history(copy_id, limit=100)
    assert [h["checkpoint"]["checkpoint_id"] for h in copy_history] == [
        h["checkpoint"]["checkpoint_id"] for h in source_history
    ]
    await client.runs.wait(copy_id, "agent", input=human("list my tasks"), context=WRITER)
    assert contents((await client.threads.get_state(tid))["values"]) == contents(original["values"])


async def test_studio_reads_the_whole_state_without_blocking_our_classes(studio):
    """langgraph.json's serde allow-list reaches the saver Studio reads threads through."""
    server, _ = studio
    client = get_client(url=server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "agent", input=human("create a task to call mum"), context=WRITER)
    state = await client.threads.get_state(tid)
    assert isinstance(state["values"], dict)
    assert state["values"]["verdict"] == {"allowed": True, "reason": "", "flags": []}
    history = await client.threads.get_history(tid, limit=100)
    assert any(isinstance(h["values"], dict) and "verdict" in h["values"] for h in history)
    thread_values = (await client.threads.get(tid))["values"]
    assert isinstance(thread_values, dict) and thread_values["verdict"]["allowed"] is True
    blocked = [line for line in server.output if "Blocked deserialization" in line]
    assert blocked == []
