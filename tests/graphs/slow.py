"""A graph with a slow step, for killing the server while a run is inside it."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    """How long the slow step takes, and which steps finished."""

    pause_s: float
    log: Annotated[list[str], operator.add]


def first(state: State) -> dict[str, Any]:
    """A quick step: its checkpoint is what a takeover resumes from."""
    return {"log": ["first"]}


async def slow(state: State) -> dict[str, Any]:
    """A step that takes `pause_s` seconds."""
    await asyncio.sleep(state.get("pause_s", 0.0))
    return {"log": ["slow"]}


builder = StateGraph(State)
builder.add_node("first", first)
builder.add_node("slow", slow)
builder.add_edge(START, "first")
builder.add_edge("first", "slow")
builder.add_edge("slow", END)
graph = builder.compile()
