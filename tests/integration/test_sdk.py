"""The stock langgraph-sdk against the live server: assistants, threads, runs, streams."""

import asyncio
import json
import uuid
from typing import Any, cast

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.integration.conftest import serve

# runs.wait goes through the SDK's reconnecting request, which raises httpx's status error.
Conflict = (ConflictError, httpx.HTTPStatusError)
NotFound = (NotFoundError, httpx.HTTPStatusError)
Unprocessable = (UnprocessableEntityError, httpx.HTTPStatusError)

pytestmark = pytest.mark.integration

CREATE = "Create a high-priority task for the quarterly review due next Friday"


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture
def paced_server(tmp_path):
    """A server whose offline engine takes 20 ms per token, so runs last long enough to race."""
    server = serve(tmp_path / "data", env={"TASKAGENT_OFFLINE_TOKEN_DELAY_MS": "20"})
    yield server
    server.stop()


def values(result: Any) -> dict[str, Any]:
    """runs.wait/join are typed as list-or-dict; a thread run returns the values dict."""
    assert isinstance(result, dict)
    return result


async def until_running(client, tid: str, run_id: str) -> None:
    for _ in range(200):
        if (await client.runs.get(tid, run_id))["status"] == "running":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never started")


async def collect(stream) -> list[Any]:
    return [part async for part in stream]


async def test_assistants_and_server_info(live_server):
    client = get_client(url=live_server.url)
    found = await client.assistants.search()
    assert [a["graph_id"] for a in found] == ["agent"]
    assistant = await client.assistants.get("agent")
    assert assistant["assistant_id"] == found[0]["assistant_id"]
    graph = await client.assistants.get_graph("agent")
    node_ids = {node["id"] for node in graph["nodes"]}
    assert {"guard_input", "router", "model_call", "guard_tools", "tool_execute"} <= node_ids
    schemas = await client.assistants.get_schemas("agent")
    assert "user_id" in json.dumps(schemas["context_schema"])
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        assert (await http.get("/ok")).json() == {"ok": True}
        assert "flags" in (await http.get("/info")).json()


async def test_threads_create_get_search_delete(live_server):
    client = get_client(url=live_server.url)
    chosen = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=chosen, metadata={"project": "q4"})
    assert thread["thread_id"] == chosen and thread["status"] == "idle"
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=chosen)
    same = await client.threads.create(thread_id=chosen, if_exists="do_nothing")
    assert same["thread_id"] == chosen
    await client.threads.create(metadata={"project": "other"})
    found = await client.threads.search(metadata={"project": "q4"})
    assert [t["thread_id"] for t in found] == [chosen]
    assert (await client.threads.get(chosen))["metadata"] == {"project": "q4"}
    await client.threads.delete(chosen)
    with pytest.raises(NotFoundError):
        await client.threads.get(chosen)


async def test_stream_values_updates_and_tokens_then_state_and_history(live_server):
    client = get_client(url=live_server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    parts = await collect(
        client.runs.stream(
            tid, "agent", input=human(CREATE), stream_mode=["values", "updates", "messages-tuple"]
        )
    )
    events = [p.event for p in parts]
    assert events[0] == "metadata" and "run_id" in parts[0].data
    assert "values" in events and "updates" in events and "messages" in events
    nodes = [next(iter(p.data)) for p in parts if p.event == "updates"]
    assert nodes[:3] == ["guard_input", "router", "model_call"] and "tool_execute" in nodes
    tokens = "".join(
        p.data[0]["content"]
        for p in parts
        if p.event == "messages" and p.data[0]["type"] == "AIMessageChunk"
    )
    assert "TASK-0001" in tokens
    ids = [int(p.id) for p in parts if p.id is not None]
    assert ids == list(range(1, len(ids) + 1))  # gap-free, in order
    final = [p for p in parts if p.event == "values"][-1].data
    assert "TASK-0001" in final["messages"][-1]["content"]

    state = await client.threads.get_state(tid)
    assert state["next"] == [] and values(state["values"])["messages"][-1]["type"] == "ai"
    history = await client.threads.get_history(tid, limit=5)
    assert (
        len(history) == 5
        and history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    )
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_delete_interrupts_and_resume_answers_from_another_connection(live_server):
    client = get_client(url=live_server.url)
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "agent", input=human("add a task to buy milk"))
    parts = await collect(
        client.runs.stream(tid, "agent", input=human("delete TASK-0001"), stream_mode="updates")
    )
    interrupt = next(
        p.data["__interrupt__"][0]
        for p in parts
        if p.event == "updates" and "__interrupt__" in p.data
    )
    assert interrupt["value"]["task_id"] == "TASK-0001" and interrupt["value"]["title"]

    other = get_client(url=live_server.url)  # a different connection, later
    thread = await other.threads.get(tid)
    assert thread["status"] == "interrupted"
    state = await other.threads.get_state(tid)
    assert state["interrupts"][0]["value"]["tool"] == "delete_task"
    assert state["next"] == ["guard_tools"]
    result = values(await other.runs.wait(tid, "agent", command={"resume": {"approved": True}}))
    assert "deleted" in result["messages"][-1]["content"].lower()
    assert (await other.threads.get(tid))["status"] == "idle"
    with pytest.raises(Conflict, match="409"):
        await other.runs.wait(tid, "agent", command={"resume": {"approved": True}})


async def test_background_run_join_get_list_and_wait(live_server):
    client = get_client(url=live_server.url)
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "agent", input=human(CREATE))
    assert run["status"] in ("pending", "running")
    joined = values(await client.runs.join(tid, run["run_id"]))
    assert "TASK-0001" in joined["messages"][-1]["content"]
    fetched = await client.runs.get(tid, run["run_id"])
    assert fetched["status"] == "success"
    listed = await client.runs.list(tid)
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    waited = values(await client.runs.wait(tid, "agent", input=human("list my tasks")))
    assert "Quarterly review" in waited["messages"][-1]["content"]


async def test_join_stream_with_last_event_id_gets_exactly_the_rest(paced_server):
    client = get_client(url=paced_server.url)
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        tid, "agent", input=human(CREATE), stream_mode=["updates", "messages-tuple"]
    )
    seen = []
    async for part in client.runs.join_stream(tid, run["run_id"]):
        seen.append(part)
        if len(seen) == 6:
            break  # the client drops mid-run
    rest = await collect(client.runs.join_stream(tid, run["run_id"], last_event_id=seen[-1].id))
    everything = await collect(client.runs.join_stream(tid, run["run_id"]))
    assert [p.id for p in seen + rest] == [p.id for p in everything]
    assert [int(p.id) for p in everything] == list(range(1, len(everything) + 1))
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_double_texting_reject_and_enqueue(paced_server):
    client = get_client(url=paced_server.url)
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "agent", input=human(CREATE))
    with pytest.raises(ConflictError, match="already has a run in progress"):
        await client.runs.create(
            tid, "agent", input=human("list my tasks"), multitask_strategy="reject"
        )
    second = await client.runs.create(
        tid, "agent", input=human("list my tasks"), multitask_strategy="enqueue"
    )
    assert second["status"] == "pending"
    final = values(await client.runs.join(tid, second["run_id"]))
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "success"
    # the enqueued run ran after the first one and saw its task
    assert "Quarterly review" in final["messages"][-1]["content"]
    humans = [m["content"] for m in final["messages"] if m["type"] == "human"]
    assert humans == [CREATE, "list my tasks"]


async def test_double_texting_interrupt_and_rollback(paced_server):
    client = get_client(url=paced_server.url)
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "agent", input=human("give me a summary"))
    await until_running(client, tid, first["run_id"])
    second = await client.runs.create(
        tid, "agent", input=human("give me a summary"), multitask_strategy="interrupt"
    )
    await client.runs.join(tid, second["run_id"])
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "success"

    third = await client.runs.create(tid, "agent", input=human("what's overdue?"))
    await until_running(client, tid, third["run_id"])
    fourth = await client.runs.create(
        tid, "agent", input=human("list my tasks"), multitask_strategy="rollback"
    )
    final = values(await client.runs.join(tid, fourth["run_id"]))
    assert (await client.runs.get(tid, third["run_id"]))["status"] == "interrupted"
    humans = [m["content"] for m in final["messages"] if m["type"] == "human"]
    assert "what's overdue?" not in humans  # the rolled-back run left nothing behind
    assert humans[-1] == "list my tasks"


async def test_cancel_a_running_run(paced_server):
    client = get_client(url=paced_server.url)
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "agent", input=human("give me a summary"))
    await until_running(client, tid, run["run_id"])
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    after = values(await client.runs.wait(tid, "agent", input=human("list my tasks")))
    assert after["messages"][-1]["type"] == "ai"


async def test_bad_requests_are_clear_4xx(live_server):
    client = get_client(url=live_server.url)
    with pytest.raises(NotFound, match="404"):
        await client.runs.wait("no-such-thread", "agent", input=human("hi"))
    tid = (await client.threads.create())["thread_id"]
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, str(uuid.uuid4()))
    with pytest.raises(Unprocessable, match="stream_mode"):
        await client.runs.create(
            tid, "agent", input=human("hi"), stream_mode=cast(Any, "telepathy")
        )
    with pytest.raises(NotFound, match="Invalid assistant: .nobody."):
        await client.runs.create(tid, "nobody", input=human("hi"))
    with pytest.raises(Conflict, match="nothing to resume"):
        await client.runs.create(tid, "agent", command={"resume": {"approved": True}})
    assert await client.runs.list(tid) == []  # nothing half-created


async def test_two_clients_streaming_on_one_thread_take_turns(paced_server):
    alice, bob = get_client(url=paced_server.url), get_client(url=paced_server.url)
    tid = (await alice.threads.create())["thread_id"]

    async def stream(client: Any, text: str) -> list[Any]:
        return await collect(
            client.runs.stream(tid, "agent", input=human(text), stream_mode="updates")
        )

    first, second = await asyncio.gather(stream(alice, CREATE), stream(bob, "list my tasks"))
    assert first[0].event == second[0].event == "metadata"
    final = values(await alice.threads.get_state(tid))["values"]
    humans = [m["content"] for m in final["messages"] if m["type"] == "human"]
    assert sorted(humans) == sorted([CREATE, "list my tasks"])
    # one run at a time: each turn's answer directly follows its own question
    kinds = [m["type"] for m in final["messages"]]
    assert kinds.count("human") == 2 and kinds[0] == "human"
    runs = await alice.runs.list(tid)
    assert sorted(r["status"] for r in runs) == ["success", "success"]

    async def rejected() -> None:
        await collect(bob.runs.stream(tid, "agent", input=human("hi"), multitask_strategy="reject"))

    slow = asyncio.create_task(stream(alice, "give me a summary"))
    for _ in range(200):
        if any(r["status"] == "running" for r in await alice.runs.list(tid)):
            break
        await asyncio.sleep(0.01)
    with pytest.raises(Conflict, match="already has a run in progress"):
        await rejected()
    await slow
