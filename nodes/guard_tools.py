"""Tool guard: authorize, validate, cap and de-duplicate model tool calls; ask before risky ones."""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from graph import metrics
from graph.context import Context
from graph.services import Services
from graph.state import State
from tools.approval import (
    CHANGING_TOOLS,
    UnusableDecision,
    answers,
    approval_request,
    binding,
    from_decisions,
    names_no_call,
    needs_approval,
    quoted,
)
from tools.audit import AuditRecord
from tools.authorization import argument_problem, may_call, task_scope
from tools.grounding import ground_call, request_words
from tools.references import (
    as_task_id,
    current_request,
    ids_in,
    is_pronoun,
    names_title,
    pronoun_problem,
    recent_task_id,
    resolve_for,
    seen_ids,
    unseen_id_problem,
)
from tools.schemas import DESTRUCTIVE_TOOLS, TOOL_ARGS, call_signature
from tools.tool_results import call_key

INVALID_ARGUMENTS = "__invalid_arguments__"
REPEATED_CALL = "was already called with exactly these arguments in this turn"


def _denied(call: ToolCall, reason: str, **details: Any) -> ToolMessage:
    return ToolMessage(
        content=json.dumps({"ok": False, "error": reason, **details}),
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


async def guard_tools(
    state: State, runtime: Runtime[Context], *, services: Services
) -> dict[str, Any]:
    """Let through only calls the user may make, with valid arguments, approved if destructive."""
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
    thread_id = (info.thread_id or "") if info else ""
    step_ns = info.checkpoint_ns if info else ""

    async def audit(
        kind: Any, position: int, call: ToolCall, success: bool, note: str, **extra: Any
    ) -> None:
        await services.tasks.audit(
            AuditRecord(
                kind,
                user=context.user_id,
                role=context.role,
                thread_id=thread_id,
                run_id=(info.run_id or "") if info else "",
                step=state.get("model_calls", 0),
                tool=call["name"],
                tool_call_id=call["id"] or "",
                arguments=extra.pop("arguments", call["args"]),
                success=success,
                error="" if success else note,
                result_summary=note if success else "",
                call_key=call_key(thread_id, step_ns, position, call["id"] or "") if info else "",
                **extra,
            )
        )

    step_key = json.dumps([thread_id, step_ns])
    shown = await services.tasks.shown_approvals(step_key)
    pauses = 0

    async def ask(request: dict[str, Any]) -> dict[str, Any]:
        # LangGraph hands resume values to a node's interrupt() calls by position, so the
        # question shown at each position is recorded before pausing on it: a plain answer
        # then counts only for the question the user saw there.
        nonlocal pauses
        while True:
            position, pauses = pauses, pauses + 1
            if position not in shown:
                shown[position] = request["approval_id"]
                await services.tasks.record_shown(step_key, position, request["approval_id"])
            try:
                # The server translates LangChain decisions before resuming; `langgraph dev`
                # hands them over as sent. An edit is no answer: the question is asked again.
                answer = from_decisions(interrupt(request))
            except UnusableDecision:
                continue
            if answers(answer, request) or (
                names_no_call(answer) and shown[position] == request["approval_id"]
            ):
                return dict(answer)

    async def refuse(position: int, call: ToolCall, reason: str, why: str, **details: Any) -> None:
        await audit("denied", position, call, False, reason)
        tool = call["name"] if call["name"] in TOOL_ARGS else "unknown"  # model-written
        refused.append((tool, why))
        denied_messages.append(_denied(call, reason, **details))

    cap = services.settings.max_tool_calls_per_message
    excess = last.tool_calls[cap:]
    if excess:
        # One audit row for the lot: a model may emit thousands of calls in one message.
        reason = (
            f"Not executed: the model asked for {len(last.tool_calls)} tool calls in one"
            f" message and at most {cap} run per message. Ask for the rest in a later step."
        )
        await audit(
            "denied", cap, excess[0], False, reason, arguments={"refused_calls": len(excess)}
        )
        refused.extend(
            (c["name"] if c["name"] in TOOL_ARGS else "unknown", "denied") for c in excess
        )
        denied_messages.extend(_denied(call, reason) for call in excess)

    for position, call in enumerate(last.tool_calls[:cap]):
        args, reason = check_call(call, context.role, seen)
        if args is None:
            await refuse(
                position, call, reason, "identical_call" if REPEATED_CALL in reason else "denied"
            )
            continue
        # The user's words, not the model's guesses, decide dates, priority and tags.
        args = ground_call(call["name"], args, request_words(state["messages"]), date.today())
        approval: dict[str, Any] | None = None
        scope = task_scope(context.role, context.user_id)
        if "task" in args:
            reference = str(args["task"])
            if is_pronoun(reference):
                # "it" is the task the conversation last pointed at, as a person reads it.
                recent = recent_task_id(state["messages"])
                if recent is None:
                    await refuse(position, call, pronoun_problem(reference), "denied")
                    continue
                reference = recent
            # Resolved before any approval, so the user is asked about, and a yes binds, the
            # very task the call then changes.
            resolution = await resolve_for(
                services.tasks, scope, context.user_id, reference, call["name"]
            )
            if resolution.task_id is None:
                await refuse(
                    position, call, resolution.problem, "denied", candidates=resolution.candidates
                )
                continue
            args = {**args, "task": resolution.task_id}
            if call_signature(call["name"], args) in seen:
                await refuse(
                    position,
                    call,
                    f"{call['name']} {REPEATED_CALL}; use the earlier result instead of"
                    " repeating the call.",
                    "identical_call",
                )
                continue
        if call["name"] in CHANGING_TOOLS:
            found = await services.tasks.owned(scope, str(args["task"]))
            if found is None and call["name"] in DESTRUCTIVE_TOOLS:
                # Nothing to show the user, so nothing they could approve: a task created by
                # another call of this message is deleted by a later call, once it exists.
                await refuse(position, call, _not_there(str(args["task"])), "denied")
                continue
            if found is not None and _guessed(call, *found, context.user_id, state):
                await refuse(
                    position, call, unseen_id_problem(found[0]["id"], found[0]["title"]), "denied"
                )
                continue
            if found is not None and needs_approval(call["name"], context.user_id, found[1]):
                task, owner = found
                request = approval_request(
                    call["id"] or "", call["name"], args, task, owner, context.user_id
                )
                # An answer to another question (one asked before the calls or tasks
                # changed) approves nothing: this one is asked.
                answer = await ask(request)
                yes = bool(answer["approved"])
                verb = "approved" if yes else "rejected"
                await audit(
                    "approval", position, call, yes, f"{verb} {call['name']} on {task['id']}"
                )
                if not yes:
                    refused.append((call["name"], "rejected"))
                    rejected = _rejected(call["name"], task["id"], answer.get("reason"))
                    denied_messages.append(_denied(call, rejected))
                    continue
                approval = binding(task, owner)
        seen.append(call_signature(call["name"], args))
        approved.append(
            {"id": call["id"], "name": call["name"], "args": args, "approval": approval}
        )
    metrics.tool_refusals(refused)
    return {"messages": denied_messages, "pending_calls": approved, "proposed_calls": proposed}


def _guessed(call: ToolCall, task: dict[str, Any], owner: str, actor: str, state: State) -> bool:
    """Return whether an unasked change names by bare id a task nobody brought up.

    Small models guess ids ("TASK-0001" for "the insurance task"). An id the user said or a
    tool result showed is trusted, so is one whose title the user's request names; a change
    the user approves shows them the task, so it is left to their answer.
    """
    if needs_approval(call["name"], actor, owner):
        return False
    reference = str(call["args"].get("task", call["args"].get("task_id", "")))
    if as_task_id(reference) is None and not ids_in(reference):
        return False
    messages = state["messages"]
    return task["id"] not in seen_ids(messages) and not names_title(
        str(task["title"]), current_request(messages)
    )


def _rejected(tool: str, task_id: str, reason: Any = None) -> str:
    if tool in DESTRUCTIVE_TOOLS:
        said = f"The user rejected deleting {task_id}; it was kept."
    else:
        doing = "completing" if tool == "complete_task" else "changing"
        said = f"The user rejected {doing} {task_id}; it was left as it was."
    # A reject decision's message (LangChain's human-in-the-loop schema), quoted as data.
    return f"{said} The user's reason: {quoted(reason)}." if isinstance(reason, str) else said


def _not_there(task_id: str) -> str:
    return (
        f"Task {task_id} not found (it may have been deleted, or not be created yet), so"
        " nothing was deleted. Deleting needs the user's approval of an existing task: once"
        " it exists, call delete_task for it again."
    )


def after_guard_tools(state: State) -> Literal["execute", "model", "halt"]:
    """Execute approved calls; with none, let the model see the refusals; stop when halted."""
    if state.get("halted"):
        return "halt"
    return "execute" if state.get("pending_calls") else "model"
