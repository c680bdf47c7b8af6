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


def argument_problem(role: Role, tool: str, args: dict[str, object]) -> str | None:
    """Return why `role` may not pass these arguments to `tool`, or None if it may."""
    if args.get("owner") is not None and role != "admin":
        return "Only admins may act on other users' tasks."
    return None


def task_scope(role: Role, user_id: str) -> str | None:
    """Return whose tasks a call may touch: the caller's own, or anyone's (None) for admins."""
    return None if role == "admin" else user_id
