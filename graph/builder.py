"""The one module that knows every node: builds the task agent's state machine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial, wraps
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, TimeoutPolicy

from graph.context import Context
from graph.services import LazyServices, Services
from graph.settings import get_settings
from graph.state import InputState, State
from models.resilience import is_transient
from nodes.answer_check import after_answer_check, answer_check
from nodes.fallback import fallback
from nodes.guard_input import after_guard_input, guard_input
from nodes.guard_tools import after_guard_tools, guard_tools
from nodes.model_call import after_model_call, model_call
from nodes.router import after_router, router
from nodes.tool_execute import tool_execute

Node = Callable[..., Awaitable[Any]]


def _bound(node: Node, services: Services | LazyServices) -> Node:
    """Return `node` with this graph's services bound to its `services` parameter.

    LangGraph still sees the node's own parameters (`runtime`, `error`) and injects them.
    """
    if isinstance(services, Services):
        return partial(node, services=services)

    @wraps(node)
    async def opening_services(*args: Any, **kwargs: Any) -> Any:
        return await node(*args, services=await services.get(), **kwargs)

    return opening_services


def build_graph(
    services: Services | LazyServices,
) -> StateGraph[State, Context, InputState, State]:
    """Return the uncompiled graph whose nodes use `services`; compile it with a checkpointer.

    Each graph gets its own services, so two graphs in one process never answer with each
    other's models or write to each other's store.
    """
    settings = services.settings
    builder = StateGraph(State, context_schema=Context, input_schema=InputState)
    builder.add_node("guard_input", _bound(guard_input, services))
    builder.add_node("router", _bound(router, services))
    builder.add_node(
        "model_call",
        _bound(model_call, services),
        retry_policy=RetryPolicy(
            initial_interval=settings.retry_initial_s,
            max_interval=settings.retry_max_s,
            max_attempts=settings.model_max_attempts,
            jitter=True,
            retry_on=is_transient,
        ),
        timeout=TimeoutPolicy(run_timeout=settings.model_timeout_s),
        error_handler=_bound(fallback, services),
    )
    builder.add_node("guard_tools", _bound(guard_tools, services))
    builder.add_node("tool_execute", _bound(tool_execute, services))
    builder.add_node("answer_check", _bound(answer_check, services))

    builder.add_edge(START, "guard_input")
    builder.add_conditional_edges(
        "guard_input", after_guard_input, {"ok": "router", "blocked": END}
    )
    builder.add_conditional_edges("router", after_router, {"agent": "model_call", "direct": END})
    builder.add_conditional_edges(
        "model_call", after_model_call, {"tools": "guard_tools", "done": "answer_check"}
    )
    builder.add_conditional_edges(
        "answer_check", after_answer_check, {"retry": "model_call", "done": END}
    )
    builder.add_conditional_edges(
        "guard_tools",
        after_guard_tools,
        {"execute": "tool_execute", "model": "model_call", "halt": END},
    )
    builder.add_edge("tool_execute", "model_call")
    return builder


# For `langgraph dev` / Studio (langgraph.json): no checkpointer, and services of its own that
# open from the environment's settings when its first node runs, never at import.
graph = build_graph(LazyServices(get_settings())).compile(name="agent")
