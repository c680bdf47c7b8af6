"""Tool guard: authorize, validate and de-duplicate the model's tool calls; ask before deleting."""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from graph import metrics
from graph.context import Context
from graph.services import get_services
from graph.state import State
from tools.audit import AuditRecord
from tools.authorization import argument_problem, may_call, task_scope
from tools.schemas import DESTRUCTIVE_TOOLS, TOOL_ARGS, call_signature

INVALID_ARGUMENTS = "__invalid_arguments__"
REPEATED_CALL = "was already called with exactly these arguments in this turn"


def _denied(call: ToolCall, reason: str) -> ToolMessage:
    return ToolMessage(
        content=json.dumps({"ok": False, "error": reason}),
        tool_call_id=call["id"] or "",
        name=call["name"],
        status="error",
    )


def check_call(call: ToolCall, role: Any, executed: list[str]) -> tuple[dict[str, Any] | None, str]:
    """Return (validated arguments, "") for an acceptable call, else (None, why it is refused)."""
    name, args = call["name"], call["args"]
    if name not in TOOL_ARGS:
        return None, f"There is no tool named {name!r}. Available: {', '.join(TOOL_ARGS)}."
    if not may_call(role, name):
        return None, f"Your role ({role}) is not allowed to call {name}."
    if INVALID_ARGUMENTS in args:
        return None, f"The arguments for {name} were not valid JSON: {args[INVALID_ARGUMENTS]!r}."
    try:
        validated = TOOL_ARGS[name].model_validate(args).model_dump(exclude_unset=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
            for err in exc.errors()
        )
        return None, f"Invalid arguments for {name}: {problems}."
    problem = argument_problem(role, name, validated)
    if problem:
        return None, problem
    if call_signature(name, validated) in executed:
        return None, (
            f"{name} {REPEATED_CALL}; use the earlier result instead of repeating the call."
        )
    return validated, ""


def oscillating(proposed: list[str]) -> bool:
    """Return whether the newest calls alternate A, B, A, B or repeat one call three times."""
    if len(proposed) >= 4:
        a, b, c, d = proposed[-4:]
        if a == c and b == d and a != b:
            return True
    return len(proposed) >= 3 and proposed[-1] == proposed[-2] == proposed[-3]


def _halt(last: AIMessage, state: State, why: str) -> dict[str, Any]:
    ran = [c.split("{", 1)[0] for c in state.get("executed_calls", [])]
    found = f" Before that I ran: {', '.join(ran)}." if ran else " Nothing was changed."
    stop = AIMessage(
        content=f"I stopped: {why}.{found} Please rephrase or split the request.",
        response_metadata={"model_used": state.get("model_used", ""), "halted": True},
    )
    denied = [_denied(call, f"Not executed: {why}.") for call in last.tool_calls]
    return {"messages": [*denied, stop], "pending_calls": [], "halted": True}


async def guard_tools(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Let through only calls the user may make, with valid arguments, approved if destructive."""
    services = await get_services()
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    context = runtime.context
    if state.get("model_calls", 0) >= services.settings.max_model_calls:
        limit = services.settings.max_model_calls
        metrics.RUNAWAY_STOPS.labels("step_limit").inc()
        return _halt(last, state, f"this turn reached its limit of {limit} model steps")
    proposed = [
        *state.get("proposed_calls", []),
        *(call_signature(c["name"], c["args"]) for c in last.tool_calls),
    ]
    if oscillating(proposed):
        metrics.RUNAWAY_STOPS.labels("oscillation").inc()
        return {
            **_halt(last, state, "the model kept alternating between the same tool calls"),
            "proposed_calls": proposed,
        }

    denied_messages: list[ToolMessage] = []
    approved: list[dict[str, Any]] = []
    seen = list(state.get("executed_calls", []))
    # Counted only when the node completes: a node that paused for approval runs again on resume.
    refused: list[tuple[str, str]] = []
    info = runtime.execution_info

    async def audit(kind: Any, call: ToolCall, success: bool, note: str) -> None:
        await services.tasks.audit(
            AuditRecord(
                kind,
                user=context.user_id,
                role=context.role,
                thread_id=(info.thread_id or "") if info else "",
                run_id=(info.run_id or "") if info else "",
                step=state.get("model_calls", 0),
                tool=call["name"],
                tool_call_id=call["id"] or "",
                arguments=call["args"],
                success=success,
                error="" if success else note,
                result_summary=note if success else "",
            )
        )

    for call in last.tool_calls:
        args, reason = check_call(call, context.role, seen)
        if args is None:
            await audit("denied", call, False, reason)
            tool = call["name"] if call["name"] in TOOL_ARGS else "unknown"  # model-written
            refused.append((tool, "identical_call" if REPEATED_CALL in reason else "denied"))
            denied_messages.append(_denied(call, reason))
            continue
        if call["name"] in DESTRUCTIVE_TOOLS:
            scope = task_scope(context.role, context.user_id)
            task = await services.tasks.get(scope, str(args["task_id"]))
            if task is not None:
                answer = interrupt(
                    {
                        "type": "approval",
                        "tool": call["name"],
                        "tool_call_id": call["id"],
                        "task_id": task["id"],
                        "title": task["title"],
                        "question": f'Delete {task["id"]} "{task["title"]}"?',
                    }
                )
                approved_by_user = isinstance(answer, dict) and answer.get("approved") is True
                await audit(
                    "approval",
                    call,
                    approved_by_user,
                    f"{'approved' if approved_by_user else 'rejected'} deleting {task['id']}",
                )
                if not approved_by_user:
                    refused.append((call["name"], "rejected"))
                    denied_messages.append(
                        _denied(call, f"The user rejected deleting {task['id']}; it was kept.")
                    )
                    continue
        seen.append(call_signature(call["name"], args))
        approved.append({"id": call["id"], "name": call["name"], "args": args})
    metrics.tool_refusals(refused)
    return {"messages": denied_messages, "pending_calls": approved, "proposed_calls": proposed}


def after_guard_tools(state: State) -> Literal["execute", "model", "halt"]:
    """Execute approved calls; with none, let the model see the refusals; stop when halted."""
    if state.get("halted"):
        return "halt"
    return "execute" if state.get("pending_calls") else "model"
