"""Tool execution: run the approved calls against the task store, each at most once."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import date
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.runtime import Runtime

from graph import metrics
from graph.context import Context
from graph.services import Services
from graph.state import State
from tools.audit import AuditRecord, completed
from tools.authorization import task_scope
from tools.schemas import TOOL_ARGS, call_signature
from tools.tasks import Call, run_tool
from tools.tool_results import call_key

log = logging.getLogger(__name__)


async def tool_execute(
    state: State, runtime: Runtime[Context], *, services: Services
) -> dict[str, Any]:
    """Run each approved tool call with a timeout and return its result to the model."""
    timeout = services.settings.tool_timeout_s
    context = runtime.context
    info = runtime.execution_info
    owner = context.user_id
    thread_id = (info.thread_id or "") if info else ""
    # This step's identity: the same on a replay of this step after a crash, new otherwise.
    step_ns = info.checkpoint_ns if info else f"unbound:{uuid.uuid4()}"
    messages: list[ToolMessage] = []
    executed = list(state.get("executed_calls", []))
    for position, call in enumerate(state.get("pending_calls", [])):
        args = TOOL_ARGS[call["name"]].model_validate(call["args"])
        outcome = ""
        key = call_key(thread_id, step_ns, position, call["id"])
        audit = AuditRecord(
            "tool",
            user=owner,
            role=context.role,
            thread_id=thread_id,
            run_id=(info.run_id or "") if info else "",
            step=state.get("model_calls", 0),
            tool=call["name"],
            tool_call_id=call["id"],
            arguments=call["args"],
            call_key=key,
        )
        try:
            result = await asyncio.wait_for(
                run_tool(
                    services.tasks,
                    call["name"],
                    args,
                    owner=owner,
                    scope=task_scope(context.role, owner),
                    call=Call(
                        call["id"],
                        date.today(),
                        audit,
                        key=key,
                        thread_id=thread_id,
                        for_model=True,
                        approval=call.get("approval"),
                    ),
                ),
                timeout,
            )
        except TimeoutError:
            # A mutation may have committed just before the deadline (and was audited with it);
            # otherwise the call did not happen, and the audit says it timed out.
            stored = await services.tasks.stored_result(key)
            result = stored or {"ok": False, "error": f"{call['name']} timed out after {timeout}s."}
            if stored is None:
                outcome = "timeout"
                await services.tasks.audit(completed(audit, result, timeout))
        log.info("tool call", extra={"tool": call["name"], "ok": result.get("ok")})
        outcome = outcome or ("ok" if result.get("ok") else "error")
        metrics.TOOL_CALLS.labels(call["name"], outcome).inc()
        messages.append(
            ToolMessage(
                content=json.dumps(result),
                tool_call_id=call["id"],
                name=call["name"],
                status="success" if result.get("ok") else "error",
            )
        )
        executed.append(call_signature(call["name"], call["args"]))
    return {"messages": messages, "pending_calls": [], "executed_calls": executed}
