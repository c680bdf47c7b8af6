"""Agent-protocol projections of LangGraph state, on a real graph and SQLite saver."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

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


class Items(TypedDict, total=False):
    items: list[str]


def ask(state: Items) -> Items:
    return {"items": [*state.get("items", []), interrupt("which item?")]}


async def test_a_subgraph_task_names_its_checkpoint_or_carries_its_whole_state(tmp_path: Path):
    child = StateGraph(Items)
    child.add_node("ask", ask)
    child.add_edge(START, "ask")
    child.add_edge("ask", END)
    parent = StateGraph(Items)
    parent.add_node("child", child.compile())
    parent.add_edge(START, "child")
    parent.add_edge("child", END)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.sqlite")) as saver:
        graph = parent.compile(checkpointer=saver)
        config: RunnableConfig = {"configurable": {"thread_id": "t"}}
        await graph.ainvoke({"items": ["a"]}, config)
        plain = state_json(await graph.aget_state(config))
        nested = state_json(await graph.aget_state(config, subgraphs=True))
    [task] = plain["tasks"]
    assert task["name"] == "child" and task["state"] is None
    assert task["checkpoint"]["checkpoint_ns"].startswith("child:")
    assert [i["value"] for i in task["interrupts"]] == ["which item?"]
    assert plain["interrupts"][0]["id"] == task["interrupts"][0]["id"]
    [inner] = nested["tasks"]
    assert inner["checkpoint"] is None
    assert inner["state"]["values"] == {"items": ["a"]} and inner["state"]["next"] == ["ask"]
    assert inner["state"]["tasks"][0]["interrupts"][0]["value"] == "which item?"
