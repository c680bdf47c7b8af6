"""A graph of another shape than the task agent: a parent with a compiled subgraph as a node."""

from __future__ import annotations

from dataclasses import dataclass

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


@dataclass
class Greeting:
    """What a run of this graph is told: how to greet."""

    salutation: str = "Hello"


class State(TypedDict):
    """The parent's state: a name in, a greeting out."""

    name: str
    greeting: str


class ChildState(TypedDict):
    """The subgraph's state: the same greeting, shouted."""

    greeting: str


def shout(state: ChildState) -> dict[str, str]:
    """Upper-case the greeting."""
    return {"greeting": state["greeting"].upper()}


def greet(state: State, runtime: Runtime[Greeting]) -> dict[str, str]:
    """Greet the name with the run's salutation."""
    return {"greeting": f"{runtime.context.salutation}, {state['name']}"}


child = StateGraph(ChildState)
child.add_node("shout", shout)
child.add_edge(START, "shout")
child.add_edge("shout", END)

parent = StateGraph(State, context_schema=Greeting)
parent.add_node("greet", greet)
parent.add_node("loud", child.compile())
parent.add_edge(START, "greet")
parent.add_edge("greet", "loud")
parent.add_edge("loud", END)

graph = parent.compile()
