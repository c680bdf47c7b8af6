"""A chat graph built by a factory, as langgraph.json allows: it streams its answer in tokens."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph


def answer(state: MessagesState) -> dict[str, Any]:
    """Say the last message back, through a chat model so that its tokens stream."""
    said = state["messages"][-1].text
    model = GenericFakeChatModel(messages=iter([AIMessage(content=f"You said: {said}")]))
    return {"messages": [model.invoke(state["messages"])]}


def make_graph(config: Any) -> Any:
    """Build the graph (a factory, called once at start-up)."""
    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder.compile()
