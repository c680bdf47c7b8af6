"""Agent-protocol projections of LangGraph state, on a real graph and SQLite saver."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

from server.api.protocol.threads import state_json


class Count(TypedDict):
    n: int


def fail(state: Count) -> Count:
    raise ValueError("the provider said: key sk-secret is invalid")


async def test_a_task_that_failed_shows_its_errors_name_not_its_text(tmp_path: Path):
    builder = StateGraph(Count)
    builder.add_node("fail", fail)
    builder.add_edge(START, "fail")
    builder.add_edge("fail", END)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = builder.compile(checkpointer=saver)
        config: RunnableConfig = {"configurable": {"thread_id": "t"}}
        with pytest.raises(ValueError, match="provider said"):
            await graph.ainvoke({"n": 1}, config)
        state = state_json(await graph.aget_state(config))
    assert [(task["name"], task["error"]) for task in state["tasks"]] == [("fail", "ValueError")]
