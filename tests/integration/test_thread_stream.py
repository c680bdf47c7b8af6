"""The thread-centric protocol (what the new useStream speaks) against the live server.

`POST /threads/{id}/commands` and `POST /threads/{id}/stream/events`, driven over HTTP with SSE
parsing as `@langchain/langgraph-sdk` 1.x does, and by that SDK itself from Node.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.integration.conftest import REPO, LiveServer, db_rows, serve, serve_again

pytestmark = pytest.mark.integration

ALICE = {"X-Api-Key": "k-alice-0000"}
BOB = {"X-Api-Key": "k-bob-00000"}
CAROL = {"X-Api-Key": "k-carol-0000"}
DAVE = {"X-Api-Key": "k-dave-00000"}
ERIN = {"X-Api-Key": "k-erin-00000"}
FRED = {"X-Api-Key": "k-fred-00000"}
KEYS = ",".join(
    f"k-{u}:{u.split('-')[0]}:write"
    for u in ("alice-0000", "bob-00000", "carol-0000", "dave-00000", "erin-00000", "fred-00000")
)
CREATE = "Create a task called write the quarterly report"
ALL = ["values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints", "tasks"]
TERMINAL = ("completed", "failed", "interrupted")
JS_CACHE = REPO / ".cache" / "js-thread-stream"
JS_PACKAGES = {"@langchain/langgraph-sdk": "1.15.0", "@langchain/core": "^1.3.2"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests that need no restart; each test is a user of its own."""
    # 20 ms per streamed token: a run lasts long enough for another command to race it.
    env = {"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "20"}
    live = serve(tmp_path_factory.mktemp("thread-stream") / "data", env=env)
    yield live
    live.stop()


def command(
    client: httpx.Client, thread_id: str, method: str, params: dict[str, Any], **kw: Any
) -> httpx.Response:
    body = {"id": int(time.monotonic_ns() % 1_000_000), "method": method, "params": params}
    return client.post(f"/threads/{thread_id}/commands", json=body, **kw)


def ok(response: httpx.Response) -> dict[str, Any]:
    """The result of a successful command, checked against the protocol's envelope."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "success", body
    assert isinstance(body["id"], int) and isinstance(body["meta"]["applied_through_seq"], int)
    return dict(body["result"])


def start(client: httpx.Client, thread_id: str, text: str, **kw: Any) -> str:
    params = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": text}]}}
    return str(ok(command(client, thread_id, "run.start", params, **kw))["run_id"])


def is_terminal(event: dict[str, Any]) -> bool:
    data = event["params"]["data"]
    return (
        event["method"] == "lifecycle"
        and event["params"]["namespace"] == []
        and data["event"] in TERMINAL
    )


def read(
    client: httpx.Client,
    thread_id: str,
    until: Callable[[list[dict[str, Any]]], bool],
    *,
    channels: list[str] = ALL,
    since: int | None = None,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Events of the thread's stream (SSE `event`/`id` checked against the body) until `until`."""
    body: dict[str, Any] = {"channels": channels} | ({} if since is None else {"since": since})
    events: list[dict[str, Any]] = []
    with connect_sse(client, "POST", f"/threads/{thread_id}/stream/events", json=body, **kw) as es:
        assert es.response.status_code == 200
        for sse in es.iter_sse():
            event = json.loads(sse.data)
            assert sse.event == event["method"] and sse.id == str(event["seq"])
            events.append(event)
            if until(events):
                return events
    raise AssertionError(f"stream ended early: {events}")


def terminals(count: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: sum(map(is_terminal, events)) >= count


def count(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: len(events) >= n


def tasks_in(server: LiveServer, owner: str) -> list[str]:
    rows = db_rows(
        server, "tasks.sqlite", "SELECT title FROM tasks WHERE owner = ? ORDER BY seq", [owner]
    )
    return [row[0] for row in rows]


def tools_created(events: list[dict[str, Any]]) -> str:
    """The id of the task the events' create_task call made."""
    for event in events:
        data = event["params"]["data"]
        if event["method"] == "tools" and data["event"] == "tool-finished":
            return str(json.loads(data["output"]["content"])["task"]["id"])
    raise AssertionError("no create_task result in the events")


def runs_of(server: LiveServer, owner: str) -> list[tuple[str, str]]:
    rows = db_rows(
        server, "runs.sqlite", "SELECT kind, thread_id FROM runs WHERE owner = ?", [owner]
    )
    return [(str(kind), str(thread)) for kind, thread in rows]


def test_run_start_streams_messages_values_and_lifecycle_to_its_owner_only(server):
    tid = str(uuid.uuid4())  # chosen by the client, as the SDK does: run.start creates it
    with httpx.Client(base_url=server.url, timeout=10, headers=ALICE) as client:
        run_id = start(client, tid, CREATE)
        events = read(client, tid, terminals(1))
    methods = [e["method"] for e in events]
    assert events[0]["params"]["data"] == {"event": "running", "graph_name": "agent"}
    assert events[-1]["params"]["data"]["event"] == "completed"
    assert {"values", "updates", "messages", "tools", "checkpoints", "tasks"} <= set(methods)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e["event_id"] for e in events] == [f"{run_id}:{s % (1 << 20)}" for s in seqs]
    # The answer streams as text deltas that add up to the finished block.
    messages = [e["params"]["data"] for e in events if e["method"] == "messages"]
    deltas = "".join(
        m["delta"]["text"]
        for m in messages
        if m["event"] == "content-block-delta" and m["delta"]["type"] == "text-delta"
    )
    finished = [m["content"] for m in messages if m["event"] == "content-block-finish"]
    task_id = tools_created(events)
    assert finished[-1] == {"type": "text", "text": deltas} and task_id in deltas
    assert any(c["type"] == "tool_call" and c["name"] == "create_task" for c in finished)
    tools = [e["params"]["data"] for e in events if e["method"] == "tools"]
    assert [t["event"] for t in tools] == ["tool-started", "tool-finished"]
    assert tools[0]["tool_name"] == "create_task" and tools[0]["input"]["title"]
    values = [e["params"]["data"] for e in events if e["method"] == "values"]
    assert values[-1]["messages"][-1]["content"] == deltas
    assert tasks_in(server, "alice") == ["Write the quarterly report"]

    with httpx.Client(base_url=server.url, timeout=10, headers=BOB) as bob:
        body = {"channels": ["values"]}
        assert bob.post(f"/threads/{tid}/stream/events", json=body).status_code == 404
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("state.get", {"namespace": []}),
            ("run.start", {"assistant_id": "agent", "input": None}),
            ("input.respond", {"interrupt_id": "x", "namespace": [], "response": {}}),
        ]
        for method, params in attempts:
            refused = command(bob, tid, method, params)
            assert refused.status_code == 404 and "not found" in refused.json()["detail"]
    assert runs_of(server, "alice") == [("thread", tid)] and runs_of(server, "bob") == []

    # A follower of a thread that gets deleted is told so: its stream ends.
    with httpx.Client(base_url=server.url, timeout=10, headers=ALICE) as client:
        body = {"channels": ["lifecycle"]}
        with connect_sse(client, "POST", f"/threads/{tid}/stream/events", json=body) as es:
            followed = es.iter_sse()
            assert json.loads(next(followed).data)["params"]["data"]["event"] == "running"
            assert json.loads(next(followed).data)["params"]["data"]["event"] == "completed"
            assert client.delete(f"/threads/{tid}").status_code == 204
            assert list(followed) == []


def respond(client: httpx.Client, tid: str, interrupt_id: str, approved: bool) -> dict[str, Any]:
    params = {"interrupt_id": interrupt_id, "namespace": [], "response": {"approved": approved}}
    return dict(command(client, tid, "input.respond", params).json())


def test_approval_arrives_on_input_and_input_respond_resumes_it(server):
    tid = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=10, headers=CAROL) as client:
        start(client, tid, CREATE)
        seen = read(client, tid, terminals(1), channels=["lifecycle", "tools"])
        task_id = tools_created(seen)
        for approved in (False, True):
            start(client, tid, "delete the quarterly report task")
            asked = read(
                client, tid, terminals(1), channels=["input", "lifecycle"], since=seen[-1]["seq"]
            )
            assert asked[-1]["params"]["data"]["event"] == "interrupted"
            request = next(e["params"]["data"] for e in asked if e["method"] == "input.requested")
            assert request["payload"]["tool"] == "delete_task"
            assert request["payload"]["task_id"] == task_id
            state = ok(command(client, tid, "state.get", {"namespace": []}))
            assert state["values"]["messages"][-1]["tool_calls"][0]["name"] == "delete_task"
            assert tasks_in(server, "carol") == ["Write the quarterly report"]  # asked, not done
            assert respond(client, tid, "nope", True)["error"] == "no_such_interrupt"

            answered = respond(client, tid, request["interrupt_id"], approved)
            assert answered["type"] == "success" and answered["result"] == {}
            seen = read(
                client, tid, terminals(1), channels=["lifecycle", "tools"], since=asked[-1]["seq"]
            )
            assert seen[-1]["params"]["data"]["event"] == "completed"
            # A declined call ends in a tool-error that says so; an approved one in its result.
            ended = [e["params"]["data"] for e in seen if e["method"] == "tools"][-1]
            assert ended["tool_call_id"] == request["payload"]["tool_call_id"]
            assert ended["event"] == ("tool-finished" if approved else "tool-error")
            assert tasks_in(server, "carol") == ([] if approved else ["Write the quarterly report"])
            again = respond(client, tid, request["interrupt_id"], True)
            assert again["error"] == "no_such_interrupt"


def test_a_run_stopped_by_the_next_one_ends_interrupted_and_the_stream_goes_on(server):
    tid = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=10, headers=FRED) as client:
        first = start(client, tid, CREATE)
        params = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": "list my tasks"}]},
            "multitaskStrategy": "interrupt",
        }
        second = ok(command(client, tid, "run.start", params))["run_id"]
        events = read(client, tid, terminals(2), channels=["lifecycle"])
    ends = [
        (e["event_id"].split(":")[0], e["params"]["data"]["event"])
        for e in events
        if is_terminal(e)
    ]
    assert ends == [(first, "interrupted"), (second, "completed")]
    # The log is complete before the run is recorded finished: its status follows at once.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        statuses = dict(
            db_rows(server, "runs.sqlite", "SELECT run_id, status FROM runs WHERE owner = 'fred'")
        )
        if "running" not in statuses.values():
            break
        time.sleep(0.05)
    assert statuses == {first: "interrupted", second: "success"}


def test_since_replays_across_runs_and_a_restart_without_gaps_or_repeats(tmp_path):
    server = serve(tmp_path / "data")
    tid = str(uuid.uuid4())
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            start(client, tid, CREATE)
            start(client, tid, "list my tasks")  # queued behind the first
            whole = read(client, tid, terminals(2))
    finally:
        server.stop()
    assert [e["event_id"] for e in whole].count(whole[0]["event_id"]) == 1
    restarted = serve_again(server)
    try:
        with httpx.Client(base_url=restarted.url, timeout=10) as client:
            for cut in (0, 7, len(whole) // 2, len(whole) - 2):
                since = whole[cut]["seq"]
                rest = read(client, tid, count(len(whole) - cut - 1), since=since)
                assert rest == whole[cut + 1 :]
            # The stream goes on with the thread's next run, numbered after everything before.
            start(client, tid, "show TASK-0001")
            later = read(client, tid, terminals(1), since=whole[-1]["seq"])
            assert min(e["seq"] for e in later) > whole[-1]["seq"]
            assert later[0]["params"]["data"]["event"] == "running"
    finally:
        restarted.stop()


def test_bad_requests_are_clear_errors_and_change_nothing(server):
    tid = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=10, headers=DAVE) as client:
        raw = client.post(f"/threads/{tid}/commands", content=b"{not json")
        assert raw.status_code == 400 and raw.json() == {"detail": "Invalid JSON body"}
        no_id = client.post(f"/threads/{tid}/commands", json={"method": "run.start"})
        assert no_id.status_code == 400 and no_id.json()["error"] == "invalid_argument"
        unknown = command(client, tid, "run.explode", {}).json()
        assert unknown["type"] == "error" and unknown["error"] == "unknown_command"
        for params in ({}, {"assistant_id": "agent", "input": "hi"}):
            refused = command(client, tid, "run.start", params).json()
            assert refused["error"] == "invalid_argument", refused
        # Worded as langgraph dev words it.
        nope = command(client, tid, "run.start", {"assistant_id": "nope", "input": None}).json()
        assert (
            nope["error"] == "unknown_error" and "422: Invalid assistant: 'nope'" in nope["message"]
        )
        system = {
            "assistant_id": "agent",
            "input": {"messages": [{"role": "system", "content": "x"}]},
        }
        assert command(client, tid, "run.start", system).json()["error"] == "invalid_argument"
        bad_target = {"assistant_id": "agent", "config": {"configurable": {"checkpoint_id": "x"}}}
        assert command(client, tid, "run.start", bad_target).json()["error"] == "invalid_argument"
        unknown_thread = client.post(f"/threads/{tid}/stream/events", json={"channels": ["values"]})
        assert unknown_thread.status_code == 404
        assert runs_of(server, "dave") == []

        start(client, tid, CREATE)
        read(client, tid, terminals(1), channels=["lifecycle"])
        bad = client.post(f"/threads/{tid}/stream/events", json={"channels": ["values", "debug"]})
        assert bad.status_code == 400 and "debug" in bad.json()["detail"]
        bodies: list[Any] = [{"channels": []}, {"channels": "values"}, [1]]
        for body in bodies:
            assert client.post(f"/threads/{tid}/stream/events", json=body).status_code == 400
        sub = ok(command(client, tid, "subscription.subscribe", {"channels": ["values"]}))
        assert sub["replayed_events"] == 0 and uuid.UUID(sub["subscription_id"])
        gone = command(client, tid, "subscription.unsubscribe", {"subscription_id": "x"}).json()
        assert gone["error"] == "no_such_subscription"
        tree = ok(command(client, tid, "agent.getTree", {}))["tree"]
        assert tree == {"namespace": [], "status": "completed", "graph_name": "agent"}
        checkpoints = ok(command(client, tid, "state.listCheckpoints", {"limit": 50}))[
            "checkpoints"
        ]
        assert checkpoints[0]["step"] > checkpoints[-1]["step"] == -1
        missing = command(client, tid, "state.fork", {"checkpoint_id": str(uuid.uuid4())}).json()
        assert missing["error"] == "no_such_checkpoint"

        # Fork from the checkpoint before the first answer: a new branch, the old one kept.
        first_input = checkpoints[-1]["id"]
        forked = ok(
            command(
                client,
                tid,
                "state.fork",
                {
                    "checkpoint_id": first_input,
                    "input": {"messages": [{"role": "user", "content": "list my tasks"}]},
                },
            )
        )
        assert forked["thread_id"] == tid
        read(client, tid, terminals(2), channels=["lifecycle"])
        state = ok(command(client, tid, "state.get", {"namespace": [], "keys": ["messages"]}))
        texts = [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]
        # The branch starts before the first message; the old branch stays in the history.
        assert texts == ["list my tasks"]
        history = ok(command(client, tid, "state.listCheckpoints", {"limit": 100}))["checkpoints"]
        assert {c["id"] for c in checkpoints} < {c["id"] for c in history}


def _js_client_dir() -> Path:
    """The stock JS SDK installed from npm into the ignored cache, once; skip if unreachable."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    package = {
        "name": "thread-stream-check",
        "private": True,
        "type": "module",
        "dependencies": JS_PACKAGES,
    }
    JS_CACHE.mkdir(parents=True, exist_ok=True)
    manifest = JS_CACHE / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text()) != package:
        manifest.write_text(json.dumps(package))
    if not (JS_CACHE / "node_modules" / "@langchain" / "langgraph-sdk").exists():
        installed = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=JS_CACHE,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if installed.returncode != 0:
            pytest.skip(f"npm could not install the JS SDK: {installed.stderr[-500:]}")
    shutil.copy(Path(__file__).parent / "js" / "thread_stream_client.mjs", JS_CACHE)
    return JS_CACHE


def test_the_js_sdk_thread_stream_runs_approves_and_reads_state(server):
    folder = _js_client_dir()
    ran = subprocess.run(
        ["node", "thread_stream_client.mjs", server.url, ERIN["X-Api-Key"]],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert re.search(r"TASK-\d{4}", report["texts"][-1])
    assert report["tool_calls"] == [{"name": "create_task", "ok": True}]
    assert report["output_last"] == report["texts"][-1]
    assert report["interrupt"]["tool"] == "delete_task"
    assert "deleted" in report["final_last"].lower()
    assert tasks_in(server, "erin") == []
    assert runs_of(server, "erin") == [("thread", report["thread_id"])] * 3
