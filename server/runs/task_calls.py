"""Task tool calls made directly by a person (CLI, /tasks), not by the model.

They take the agent's own path: the role matrix of the tool guard, the tool's argument
model, and `run_tool`, so writes are applied once and audited like the agent's. Kept free
of the web stack and the graph so `taskagent tasks` starts quickly.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import ValidationError

from graph.context import Context
from tools.audit import AuditRecord
from tools.authorization import argument_problem, may_call, task_scope
from tools.references import as_task_id
from tools.schemas import TOOL_ARGS
from tools.store import TaskStore
from tools.tasks import Call, run_tool


class TaskCallError(Exception):
    """A refused or failed call; `status` is the HTTP status that says why (403, 404, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors()
    )


async def call_task_tool(
    store: TaskStore, context: Context, name: str, arguments: dict[str, Any], *, via: str
) -> dict[str, Any]:
    """Run task tool `name` for the caller as the agent would, or raise TaskCallError.

    `via` names the surface in the audit row (`tasks_api`, `cli`).

    The role is checked against the same matrix as the agent's tool guard (403, audited as a
    denial), arguments against the tool's model (422), and the call runs through `run_tool`,
    so writes are applied once and audited in their transaction. An id outside the caller's
    scope is a 404.
    """
    call_id = f"direct-{uuid.uuid4()}"
    audit = AuditRecord(
        "tool",
        user=context.user_id,
        role=context.role,
        tool=name,
        tool_call_id=call_id,
        arguments=arguments,
        detail={"via": via, "request_id": context.request_id},
    )
    reason = (
        argument_problem(context.role, name, arguments)
        if may_call(context.role, name)
        else f"Your role ({context.role}) is not allowed to call {name}."
    )
    if reason is not None:
        audit.kind, audit.success, audit.error = "denied", False, reason
        await store.audit(audit)
        raise TaskCallError(403, reason)
    try:
        args = TOOL_ARGS[name].model_validate(arguments)
    except ValidationError as exc:
        raise TaskCallError(422, f"Invalid arguments for {name}: {_problems(exc)}.") from None
    scope = task_scope(context.role, context.user_id)
    result = await run_tool(
        store,
        name,
        args,
        owner=context.user_id,
        scope=scope,
        call=Call(call_id, date.today(), audit),
    )
    if not result.get("ok"):
        error = str(result.get("error", f"{name} failed."))
        named = getattr(args, "task", None)
        task_id = as_task_id(named) if isinstance(named, str) else None
        if task_id is not None and await store.get(scope, task_id) is None:
            raise TaskCallError(404, f"Task {task_id} not found.")
        raise TaskCallError(422, error)
    return result
