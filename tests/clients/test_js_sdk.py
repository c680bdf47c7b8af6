"""The stock JS SDK (@langchain/langgraph-sdk 1.15 from npm) driving the live server from Node."""

import pytest

from tests.clients.conftest import Server
from tests.clients.node import CLIENTS, run_script
from tests.integration.conftest import db_rows

pytestmark = pytest.mark.integration


def tasks_in(server: Server) -> list[tuple[str, str, str]]:
    return db_rows(server, "tasks.sqlite", "SELECT id, title, status FROM tasks ORDER BY id")


def audited(server: Server, thread_id: str) -> list[tuple[str, str, int]]:
    sql = "SELECT kind, tool, success FROM audit WHERE thread_id = ? ORDER BY id"
    return db_rows(server, "tasks.sqlite", sql, [thread_id])


def test_js_sdk_streams_interrupts_resumes_joins_and_reads_history(
    node: str, live_server: Server
) -> None:
    seen = run_script(node, CLIENTS / "sdk_flow.mjs", live_server.url)

    assert [a["graph_id"] for a in seen["assistants"]] == ["agent"]

    created = seen["created"]
    assert {"metadata", "values", "updates", "messages/partial"} <= set(created["events"])
    assert created["run_id"]
    assert created["nodes"][:3] == ["guard_input", "router", "model_call"]
    assert "tool_execute" in created["nodes"]
    # Tokens arrive as growing partial messages before the final state.
    assert created["partials"] > 1
    assert created["streamed_text"].startswith("Created TASK-0001")
    assert created["final_text"].startswith("Created TASK-0001")
    assert created["ids"] == list(range(1, len(created["ids"]) + 1))  # gap-free when sent

    [asked] = seen["interrupt"]
    assert "delete_task" in str(asked["value"]) and "TASK-0001" in str(asked["value"])
    assert seen["waiting"]["status"] == "interrupted"
    assert seen["waiting"]["next"] == ["guard_tools"]
    assert [i["id"] for i in seen["waiting"]["interrupts"]] == [asked["id"]]

    resume = seen["resume"]
    assert resume["joined_text"].startswith("Deleted TASK-0001")
    assert {"metadata", "values"} <= set(resume["followed_events"])
    assert resume["run_status"] == "success"
    assert resume["thread_status"] == "idle"
    assert tasks_in(live_server) == []
    assert audited(live_server, seen["thread_id"]) == [
        ("tool", "create_task", 1),
        ("approval", "delete_task", 1),
        ("tool", "delete_task", 1),
    ]

    history = seen["history"]
    assert history["head_checkpoint_id"] == history["state_checkpoint_id"]
    assert history["oldest_parent"] is None  # the whole thread, back to its first checkpoint
    assert history["length"] >= 10
    assert history["human_messages"] == [
        "create a high priority task to renew the passport tomorrow",
        "delete TASK-0001",
    ]
