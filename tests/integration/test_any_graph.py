"""A developer's own graphs from langgraph.json, served beside the task agent (`serve --config`).

Driven through the stock langgraph-sdk against a real server: the engine, the event log,
ownership, checkpoints, branching, the extra stream modes and thread-less runs apply to a
graph of another shape (a subgraph with its own interrupt; a chat graph built by a factory).
"""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.schema import Command

from tests.integration.conftest import LiveServer, free_port, offline_env, serve, serve_again
from tests.security.test_config_errors import run_cli

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[1] / "graphs" / "langgraph.json"
KEYS = "alice-key-123456:alice:write,bob-key-1234567:bob:write"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("any-graph") / "data"
    live = serve(data, args=("--config", str(CONFIG)), env={"TASKAGENT_API_KEYS": KEYS})
    yield live
    live.stop()


def values_of(state: Any) -> dict[str, Any]:
    """A thread state's values (the SDK types them as a dict or a list of dicts)."""
    assert isinstance(state["values"], dict)
    return state["values"]


def client_of(server: LiveServer, key: str = "alice-key-123456") -> Any:
    return get_client(url=server.url, api_key=key)


async def run_until_review(client: Any, topic: str = "owls") -> str:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "editor", input={"topic": topic})
    return str(thread["thread_id"])


async def test_a_subgraph_interrupt_pauses_the_thread_and_resume_finishes_it(server):
    client = client_of(server)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    parts = [
        part
        async for part in client.runs.stream(
            tid,
            "editor",
            input={"topic": "owls"},
            stream_mode=["updates", "values"],
            stream_subgraphs=True,
        )
    ]
    events = [part.event for part in parts]
    # The subgraph's own steps arrive under its namespace, as langgraph dev names them.
    assert any(e.startswith("updates|editor:") for e in events), events
    state = await client.threads.get_state(tid)
    assert state["next"] == ["editor"]
    [question] = state["tasks"][0]["interrupts"]
    assert question["value"] == {"question": "Publish this draft?", "draft": "A note about owls."}
    found = await client.threads.get(tid)
    assert found["status"] == "interrupted"
    assert found["metadata"]["graph_id"] == "editor"

    result = await client.runs.wait(tid, "editor", command=Command(resume=True))
    assert result["log"] == ["prepared", "published"]
    assert result["draft"] == "A note about owls."
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_a_thread_stays_with_its_graph_and_its_owner(server):
    alice, bob = client_of(server), client_of(server, "bob-key-1234567")
    tid = await run_until_review(alice)
    async with httpx.AsyncClient(base_url=server.url) as http:
        other = await http.post(
            f"/threads/{tid}/runs/wait",
            json={
                "assistant_id": "agent",
                "input": {"messages": [{"role": "user", "content": "hi"}]},
            },
            headers={"X-Api-Key": "alice-key-123456"},
        )
        assert other.status_code == 409, other.text
        assert "runs graph 'editor'" in other.json()["detail"]
        stolen = await http.get(f"/threads/{tid}/state", headers={"X-Api-Key": "bob-key-1234567"})
        assert stolen.status_code == 404
        unknown = await http.post(
            "/runs/wait",
            json={"assistant_id": "6c0d2b4e-0000-4000-8000-000000000000", "input": {}},
            headers={"X-Api-Key": "alice-key-123456"},
        )
        assert unknown.status_code == 404
    mine = await bob.threads.search(metadata={"graph_id": "editor"})
    assert tid not in [t["thread_id"] for t in mine]


async def test_branch_from_a_past_checkpoint_keeps_the_original(server):
    client = client_of(server)
    tid = await run_until_review(client, "owls")
    history = await client.threads.get_history(tid, limit=20)
    first = history[-1]  # the input checkpoint, before any node ran
    assert not first["values"].get("topic")
    await client.runs.wait(
        tid, "editor", input={"topic": "bats"}, checkpoint_id=first["checkpoint"]["checkpoint_id"]
    )
    state = await client.threads.get_state(tid)
    assert state["values"]["topic"] == "bats"
    assert state["tasks"][0]["interrupts"][0]["value"]["draft"] == "A note about bats."
    topics = {h["values"].get("topic") for h in await client.threads.get_history(tid, limit=50)}
    assert {"owls", "bats"} <= topics


async def test_interrupt_before_a_node_stops_the_run_there(server):
    client = client_of(server)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "editor", input={"topic": "owls"}, interrupt_before=["editor"])
    state = await client.threads.get_state(tid)
    assert state["next"] == ["editor"]
    assert state["values"].get("log") == ["prepared"]
    assert "draft" not in state["values"]


async def test_debug_tasks_checkpoints_and_events_stream_modes(server):
    client = client_of(server)
    thread = await client.threads.create()
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "echo",
            input={"messages": [{"role": "user", "content": "hello"}]},
            stream_mode=["debug", "tasks", "checkpoints", "events", "messages"],
        )
    ]
    by_event: dict[str, list[Any]] = {}
    for part in parts:
        by_event.setdefault(part.event, []).append(part.data)
    checkpoints = [d for d in by_event["debug"] if d["type"] == "checkpoint"]
    assert checkpoints and all("checkpoint" in d["payload"] for d in checkpoints)
    assert checkpoints[-1]["payload"]["parent_checkpoint"]["thread_id"] == thread["thread_id"]
    assert any(d.get("name") == "answer" for d in by_event["tasks"])
    assert by_event["checkpoints"]
    assert any(d["event"] == "on_chat_model_stream" for d in by_event["events"])
    # Legacy `messages`: the answer accumulates, then is complete.
    partial = by_event["messages/partial"]
    assert partial[-1][0]["content"] == "You said: hello"
    assert len(partial) > 1
    assert by_event["messages/metadata"]


async def test_thread_less_runs_wait_batch_and_background(server):
    client = client_of(server)
    alice = {"X-Api-Key": "alice-key-123456"}
    async with httpx.AsyncClient(base_url=server.url, headers=alice) as http:
        said = {"messages": [{"role": "user", "content": "hey"}]}
        waited = await http.post("/runs/wait", json={"assistant_id": "echo", "input": said})
        assert waited.status_code == 200, waited.text
        assert waited.json()["messages"][-1]["content"] == "You said: hey"
        thread_url = waited.headers["Content-Location"].split("/runs/")[0]
        # Its thread is deleted once it ended (on_completion defaults to delete).
        for _ in range(100):
            if (await http.get(thread_url)).status_code == 404:
                break
            await asyncio.sleep(0.05)
        assert (await http.get(thread_url)).status_code == 404
    kept = await client.runs.create(
        None,
        "echo",
        input={"messages": [{"role": "user", "content": "keep"}]},
        on_completion="keep",
    )
    for _ in range(100):
        if (await client.runs.get(kept["thread_id"], kept["run_id"]))["status"] == "success":
            break
        await asyncio.sleep(0.05)
    state = await client.threads.get_state(kept["thread_id"])
    assert state["values"]["messages"][-1]["content"] == "You said: keep"
    async with httpx.AsyncClient(base_url=server.url) as http:
        batch = await http.post(
            "/runs/batch",
            json=[
                {
                    "assistant_id": "echo",
                    "input": {"messages": [{"role": "user", "content": str(n)}]},
                }
                for n in range(3)
            ],
            headers={"X-Api-Key": "alice-key-123456"},
        )
        assert batch.status_code == 200, batch.text
        assert len({run["thread_id"] for run in batch.json()}) == 3


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (
            '{"graphs": {"mine": "./nowhere.py:graph"}}',
            "graph 'mine' (./nowhere.py:graph) did not load",
        ),
        ('{"graphs": {"agent": "./editor.py:graph"}}', "graph id 'agent' is the task agent's"),
        ('{"graph": {}}', 'has no "graphs" object'),
        ("{not json", "is not JSON"),
    ],
)
def test_a_bad_config_is_one_line(tmp_path, config, says):
    bad = tmp_path / "langgraph.json"
    bad.write_text(config)
    (tmp_path / "editor.py").write_text((CONFIG.parent / "editor.py").read_text())
    env = offline_env(tmp_path / "data")
    result = run_cli(["serve", "--port", str(free_port()), "--config", str(bad)], env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr


async def test_runs_use_their_assistants_config_and_context(server):
    alice, bob = client_of(server), client_of(server, "bob-key-1234567")
    owl = await alice.assistants.create("echo", context={"speaker": "Owl"}, name="owl")
    said = {"messages": [{"role": "user", "content": "hi"}]}
    thread = await alice.threads.create()
    result = await alice.runs.wait(thread["thread_id"], owl["assistant_id"], input=said)
    assert result["messages"][-1]["content"] == "Owl: You said: hi"
    assert (await alice.threads.get(thread["thread_id"]))["metadata"]["assistant_id"] == (
        owl["assistant_id"]
    )
    # The run's own context wins over the assistant's.
    again = await alice.runs.wait(
        thread["thread_id"], owl["assistant_id"], input=said, context={"speaker": "Bat"}
    )
    assert again["messages"][-1]["content"] == "Bat: You said: hi"
    # Another user cannot run on it.
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.post(
            "/runs/wait",
            json={"assistant_id": owl["assistant_id"], "input": said},
            headers={"X-Api-Key": "bob-key-1234567"},
        )
    assert refused.status_code == 404
    assert owl["assistant_id"] not in [a["assistant_id"] for a in await bob.assistants.search()]


async def test_a_run_of_any_graph_cut_by_kill_9_is_finished_after_restart(tmp_path):
    data = tmp_path / "data"
    args = ("--config", str(CONFIG))
    first = serve(data, args=args)
    client = get_client(url=first.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"pause_s": 3.0})
    for _ in range(200):
        state = await client.threads.get_state(tid)
        if state["next"] == ["slow"]:
            break
        await asyncio.sleep(0.02)
    assert values_of(state)["log"] == ["first"]
    first.kill()  # inside the slow step

    second = serve_again(first, args=args)
    try:
        client = get_client(url=second.url)
        finished = await client.runs.join(tid, run["run_id"])
        assert finished["log"] == ["first", "slow"]  # the quick step did not run again
        again = await client.runs.get(tid, run["run_id"])
        assert again["status"] == "success"
        parts = [p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id="0")]
        assert parts, "the run's log survived the kill"
    finally:
        second.stop()


async def test_bulk_cancel_stops_only_the_callers_runs(server):
    alice, bob = client_of(server), client_of(server, "bob-key-1234567")
    thread = await alice.threads.create()
    tid = thread["thread_id"]
    run = await alice.runs.create(tid, "slow", input={"pause_s": 20.0})
    # Bob can name Alice's run, or every running run: neither reaches hers.
    with pytest.raises(httpx.HTTPStatusError) as named:
        await bob.runs.cancel_many(thread_id=tid, run_ids=[run["run_id"]])
    assert named.value.response.status_code == 404
    with pytest.raises(httpx.HTTPStatusError) as every:
        await bob.runs.cancel_many(status="all")
    assert every.value.response.status_code == 404
    assert (await alice.runs.get(tid, run["run_id"]))["status"] in ("pending", "running")
    await alice.runs.cancel_many(status="all")
    assert (await alice.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    with pytest.raises(httpx.HTTPStatusError) as ended:
        await alice.runs.cancel(tid, run["run_id"])
    assert ended.value.response.status_code == 404  # as langgraph dev: nothing left to cancel
