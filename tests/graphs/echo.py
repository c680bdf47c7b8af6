"""A chat graph built by a factory, as langgraph.json allows: it streams its answer in tokens."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.runtime import Runtime


class EchoContext(TypedDict, total=False):
    """Run context: who is speaking (from the assistant or the run)."""

    speaker: str


def answer(state: MessagesState, runtime: Runtime[EchoContext]) -> dict[str, Any]:
    """Say the last message back, through a chat model so that its tokens stream."""
    said = state["messages"][-1].text
    speaker = (runtime.context or {}).get("speaker")
    reply = f"{speaker}: You said: {said}" if speaker else f"You said: {said}"
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    return {"messages": [model.invoke(state["messages"])]}


def make_graph(config: Any) -> Any:
    """Build the graph (a factory, called once at start-up)."""
    builder = StateGraph(MessagesState, context_schema=EchoContext)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder.compile()
