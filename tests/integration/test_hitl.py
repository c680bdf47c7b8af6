"""The delete approval speaks LangChain's human-in-the-loop schema, through the stock SDK.

agent-chat-ui and Agent Inbox render an interrupt whose value has `action_requests` and
`review_configs` with approve/reject buttons, and resume with `{"decisions": [...]}`. The
task agent's question carries that shape beside its own fields, and both answers work; the
answer still binds to the one call asked about. A real server on loopback with two users'
keys; the built-in offline engine asks to delete; the database says what happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.integration.conftest import HasDataDir, LiveServer, db_rows, serve
from tests.integration.test_studio import LanggraphDev

pytestmark = pytest.mark.integration

ALICE, BOB = "k-alice-hitl-0001", "k-bob-hitl-0002"
WRITER = {"user_id": "studio-user", "role": "write"}
KEYS = f"{ALICE}:alice:write,{BOB}:bob:write"
# runs.wait goes through the SDK's reconnecting request, which raises httpx's status error.
Refused = httpx.HTTPStatusError


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def task_ids(server: HasDataDir) -> set[str]:
    return {row[0] for row in db_rows(server, "tasks.sqlite", "SELECT id FROM tasks")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = serve(tmp_path_factory.mktemp("hitl") / "data", env={"TASKAGENT_API_KEYS": KEYS})
    yield live
    live.stop()


def alice(server: LiveServer) -> LangGraphClient:
    return get_client(url=server.url, api_key=ALICE)


async def add(client: LangGraphClient, thread_id: str, what: str) -> str:
    done = await client.runs.wait(thread_id, "agent", input=human(f"add a task to {what}"))
    assert isinstance(done, dict)
    found = re.search(r"TASK-\d{4}", done["messages"][-1]["content"])
    assert found, done["messages"][-1]
    return found.group()


async def asked_to_delete(client: LangGraphClient, task_id: str) -> tuple[str, str, dict[str, Any]]:
    """A thread with two tasks whose agent waits for approval to delete the first one."""
    thread_id = (await client.threads.create())["thread_id"]
    first = await add(client, thread_id, f"buy milk for {task_id}")
    other = await add(client, thread_id, f"walk the dog for {task_id}")
    await client.runs.wait(thread_id, "agent", input=human(f"delete {first}"))
    state = await client.threads.get_state(thread_id)
    assert len(state["interrupts"]) == 1
    value: dict[str, Any] = state["interrupts"][0]["value"]
    assert value["task_id"] == first
    return thread_id, other, value


async def last_messages(client: LangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    state = await client.threads.get_state(thread_id)
    values = state["values"]
    assert isinstance(values, dict)
    messages: list[dict[str, Any]] = values["messages"]
    return messages


async def test_the_delete_approval_is_a_langchain_hitl_request_and_keeps_our_fields(
    server: LiveServer,
) -> None:
    client = alice(server)
    thread_id = (await client.threads.create())["thread_id"]
    task_id = await add(client, thread_id, "renew the passport")
    parts = [
        part
        async for part in client.runs.stream(
            thread_id, "agent", input=human(f"delete {task_id}"), stream_mode="updates"
        )
    ]
    streamed = next(
        p.data["__interrupt__"][0]["value"]
        for p in parts
        if p.event == "updates" and "__interrupt__" in p.data
    )
    state = await client.threads.get_state(thread_id)
    value = state["interrupts"][0]["value"]
    assert value == streamed
    question = f'Delete {task_id} "Renew the passport"?'
    # LangChain's HITLRequest, as agent-chat-ui's isAgentInboxInterruptSchema checks it.
    assert value["action_requests"] == [
        {"name": "delete_task", "args": {"task": task_id}, "description": question}
    ]
    assert value["review_configs"] == [
        {"action_name": "delete_task", "allowed_decisions": ["approve", "reject"]}
    ]
    # Our own fields, which the browser chat, the CLI and MCP read.
    assert value["type"] == "approval" and value["question"] == question
    assert value["tool"] == "delete_task" and value["task_id"] == task_id
    assert value["tool_call_id"] and len(value["approval_id"]) == 32
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"


async def test_an_approve_decision_deletes_exactly_the_task_asked_about(
    server: LiveServer,
) -> None:
    client = alice(server)
    thread_id, other, value = await asked_to_delete(client, "approve")
    done = await client.runs.wait(
        thread_id, "agent", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    assert isinstance(done, dict)
    assert "deleted" in done["messages"][-1]["content"].lower()
    ids = task_ids(server)
    assert value["task_id"] not in ids and other in ids
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_a_reject_decision_keeps_the_task_and_gives_the_model_the_reason(
    server: LiveServer,
) -> None:
    client = alice(server)
    thread_id, other, value = await asked_to_delete(client, "reject")
    reason = "keep it,\nI still need milk"
    await client.runs.wait(
        thread_id,
        "agent",
        command={"resume": {"decisions": [{"type": "reject", "message": reason}]}},
    )
    assert {value["task_id"], other} <= task_ids(server)
    tool_answer = next(
        m for m in reversed(await last_messages(client, thread_id)) if m["type"] == "tool"
    )
    assert tool_answer["tool_call_id"] == value["tool_call_id"]
    assert tool_answer["status"] == "error"
    assert f"rejected deleting {value['task_id']}" in tool_answer["content"]
    assert "keep it, I still need milk" in tool_answer["content"]  # one line, quoted
    assert (await client.threads.get(thread_id))["status"] == "idle"


@pytest.mark.parametrize(("approved", "kept"), [(True, False), (False, True)])
async def test_our_own_approved_answer_still_works(
    server: LiveServer, approved: bool, kept: bool
) -> None:
    client = alice(server)
    thread_id, other, value = await asked_to_delete(client, f"approved {approved}")
    await client.runs.wait(thread_id, "agent", command={"resume": {"approved": approved}})
    ids = task_ids(server)
    assert (value["task_id"] in ids) is kept and other in ids
    assert (await client.threads.get(thread_id))["status"] == "idle"


@pytest.mark.parametrize(
    ("resume", "said"),
    [
        (
            {"decisions": [{"type": "edit", "edited_action": {"name": "delete_task"}}]},
            "approve or reject only",
        ),
        ({"decisions": []}, "exactly one decision"),
        ({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "exactly one decision"),
        ({"decisions": [{"type": "maybe"}]}, '{"type": "approve"}'),
        ({"decisions": "approve"}, "exactly one decision"),
        ({"decisions": [{"type": "approve"}], "approved": False}, "not both"),
    ],
)
async def test_an_edit_or_malformed_decision_is_a_422_that_changes_nothing(
    server: LiveServer, resume: dict[str, Any], said: str
) -> None:
    client = alice(server)
    thread_id, other, value = await asked_to_delete(client, "edit")
    if resume["decisions"] and isinstance(resume["decisions"], list):
        edit = resume["decisions"][0]
        if edit.get("type") == "edit":
            # An edit aiming the approved delete at the other task.
            edit["edited_action"]["args"] = {"task": other}
    before = task_ids(server)
    with pytest.raises(Refused) as refused:
        await client.runs.wait(thread_id, "agent", command={"resume": resume})
    assert refused.value.response.status_code == 422
    assert said in refused.value.response.json()["detail"]
    assert task_ids(server) == before
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    # The question still waits, and a decision still answers it.
    await client.runs.wait(
        thread_id, "agent", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    assert task_ids(server) == before - {value["task_id"]}


async def test_an_approve_decision_binds_to_the_task_as_it_was_shown(server: LiveServer) -> None:
    client = alice(server)
    thread_id, _, value = await asked_to_delete(client, "rename")
    # While the question is open the task is renamed from another conversation.
    elsewhere = (await client.threads.create())["thread_id"]
    await client.runs.wait(
        elsewhere, "agent", input=human(f"rename {value['task_id']} to sell the car")
    )
    await client.runs.wait(
        thread_id, "agent", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    # The yes was for the task as shown: nothing is deleted, the new task is asked about.
    assert value["task_id"] in task_ids(server)
    state = await client.threads.get_state(thread_id)
    again = state["interrupts"][0]["value"]
    assert again["task_id"] == value["task_id"] and again["approval_id"] != value["approval_id"]
    assert (
        again["action_requests"][0]["description"] == f'Delete {value["task_id"]} "sell the car"?'
    )
    await client.runs.wait(
        thread_id, "agent", command={"resume": {"decisions": [{"type": "reject"}]}}
    )
    assert value["task_id"] in task_ids(server)
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_another_user_cannot_answer_with_decisions(server: LiveServer) -> None:
    client = alice(server)
    thread_id, other, value = await asked_to_delete(client, "bob")
    bob = get_client(url=server.url, api_key=BOB)
    with pytest.raises(Refused) as refused:
        await bob.runs.wait(
            thread_id, "agent", command={"resume": {"decisions": [{"type": "approve"}]}}
        )
    assert refused.value.response.status_code == 404
    assert {value["task_id"], other} <= task_ids(server)
    assert (await client.threads.get(thread_id))["status"] == "interrupted"


async def test_langgraph_dev_serving_the_graph_reads_decisions_too(tmp_path: Path) -> None:
    """`make studio` resumes the graph with the raw decisions: the node itself reads them."""
    dev = LanggraphDev(tmp_path / "work", tmp_path / "data")
    try:
        client = get_client(url=dev.url)
        thread_id = (await client.threads.create())["thread_id"]
        created = await client.runs.wait(
            thread_id, "agent", input=human("add a task to buy milk"), context=WRITER
        )
        assert isinstance(created, dict) and "TASK-0001" in created["messages"][-1]["content"]
        await client.runs.wait(thread_id, "agent", input=human("delete TASK-0001"), context=WRITER)
        [asked] = (await client.threads.get_state(thread_id))["interrupts"]
        assert asked["value"]["review_configs"][0]["allowed_decisions"] == ["approve", "reject"]

        # An edit is no answer here: the same question is asked again, nothing is deleted.
        edit = {"type": "edit", "edited_action": {"name": "delete_task", "args": {"task": "x"}}}
        await client.runs.wait(
            thread_id, "agent", command={"resume": {"decisions": [edit]}}, context=WRITER
        )
        [again] = (await client.threads.get_state(thread_id))["interrupts"]
        assert again["value"]["approval_id"] == asked["value"]["approval_id"]
        assert task_ids(dev) == {"TASK-0001"}

        await client.runs.wait(
            thread_id,
            "agent",
            command={"resume": {"decisions": [{"type": "approve"}]}},
            context=WRITER,
        )
        assert task_ids(dev) == set()
        assert (await client.threads.get_state(thread_id))["interrupts"] == []
    finally:
        dev.stop()
