"""The one module that knows every node: builds the task agent's state machine."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, TimeoutPolicy

from graph.context import Context
from graph.settings import Settings, get_settings
from graph.state import InputState, State
from models.resilience import is_transient
from nodes.answer_check import after_answer_check, answer_check
from nodes.fallback import fallback
from nodes.guard_input import after_guard_input, guard_input
from nodes.guard_tools import after_guard_tools, guard_tools
from nodes.model_call import after_model_call, model_call
from nodes.router import after_router, router
from nodes.tool_execute import tool_execute


def build_graph(settings: Settings | None = None) -> StateGraph[State, Context, InputState, State]:
    """Return the uncompiled graph; callers compile it with their own checkpointer."""
    settings = settings or get_settings()
    builder = StateGraph(State, context_schema=Context, input_schema=InputState)
    builder.add_node(guard_input)
    builder.add_node(router)
    builder.add_node(
        model_call,
        retry_policy=RetryPolicy(
            initial_interval=settings.retry_initial_s,
            max_interval=settings.retry_max_s,
            max_attempts=settings.model_max_attempts,
            jitter=True,
            retry_on=is_transient,
        ),
        timeout=TimeoutPolicy(run_timeout=settings.model_timeout_s),
        error_handler=fallback,
    )
    builder.add_node(guard_tools)
    builder.add_node(tool_execute)
    builder.add_node(answer_check)

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


graph = build_graph().compile(name="agent")
