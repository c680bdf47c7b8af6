"""A developer's graph of another shape than the task agent: a subgraph that asks a question.

`prepare` → `editor` (a subgraph: `write` a draft, then `review` pauses with `interrupt`
for a person's yes or no) → `publish`. Served by the tests through `serve --config`.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    """The whole state: what to write about, the draft, the verdict and what happened."""

    topic: str
    draft: str
    approved: bool
    log: Annotated[list[str], operator.add]


class Draft(TypedDict, total=False):
    """The subgraph's own state: what it shares with the parent, and nothing else."""

    topic: str
    draft: str
    approved: bool


def write(state: Draft) -> dict[str, Any]:
    """Write a draft about the topic."""
    return {"draft": f"A note about {state.get('topic', 'nothing')}."}


def review(state: Draft) -> dict[str, Any]:
    """Ask a person whether the draft may be published."""
    answer = interrupt({"question": "Publish this draft?", "draft": state.get("draft")})
    return {"approved": bool(answer)}


def prepare(state: State) -> dict[str, Any]:
    """Note that work started."""
    return {"log": ["prepared"]}


def publish(state: State) -> dict[str, Any]:
    """Publish the draft, or discard it."""
    return {"log": ["published" if state.get("approved") else "discarded"]}


editor = StateGraph(Draft)
editor.add_node("write", write)
editor.add_node("review", review)
editor.add_edge(START, "write")
editor.add_edge("write", "review")
editor.add_edge("review", END)

builder = StateGraph(State)
builder.add_node("prepare", prepare)
builder.add_node("editor", editor.compile())
builder.add_node("publish", publish)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "editor")
builder.add_edge("editor", "publish")
builder.add_edge("publish", END)
graph = builder.compile()
