"""Which tools each role may call: the one matrix the guard and the model binding both read."""

from __future__ import annotations

from graph.context import Role
from tools.schemas import TOOL_ARGS

READ_TOOLS = ("list_tasks", "get_task", "task_summary")

ROLE_TOOLS: dict[Role, frozenset[str]] = {
    "read": frozenset(READ_TOOLS),
    "write": frozenset(TOOL_ARGS),
    "admin": frozenset(TOOL_ARGS),
}


def tools_for(role: Role) -> list[str]:
    """Return the tool names `role` may call, in a stable order."""
    return [name for name in TOOL_ARGS if name in ROLE_TOOLS[role]]


def may_call(role: Role, tool: str) -> bool:
    """Return whether `role` may call `tool`."""
    return tool in ROLE_TOOLS[role]
