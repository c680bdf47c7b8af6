"""Model call: ask the current tier for the next step, with the tools the user may use."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any, Literal

from langchain_core.messages import AIMessage, SystemMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.prompts import system_prompt
from graph.services import get_services
from graph.state import State
from graph.window import window
from models.resilience import CircuitOpenError, retry_after_seconds
from models.toolcalls import normalize_tool_calls
from tools.authorization import tools_for
from tools.schemas import TOOL_ARGS, tool_definition

log = logging.getLogger(__name__)


async def model_call(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Call the current model tier on the conversation window and record who answered."""
    services = await get_services()
    tier = services.tiers[state.get("tier", 0)]
    if not tier.breaker.allow():
        raise CircuitOpenError(tier.name, tier.breaker.seconds_until_half_open())
    names = tools_for(runtime.context.role)
    model = tier.model.bind_tools([tool_definition(name) for name in names])
    recent = window(state["messages"], services.settings.context_messages)
    prompt = [SystemMessage(content=system_prompt(date.today())), *recent]
    try:
        response = await model.ainvoke(prompt)
    except BaseException as exc:
        # Cancellation is how a node timeout arrives: it counts against the tier too.
        tier.breaker.record_failure()
        wait = retry_after_seconds(exc) if isinstance(exc, Exception) else None
        if wait:
            # Honour the server's Retry-After before the retry policy tries again.
            await asyncio.sleep(min(wait, services.settings.retry_max_s))
        raise
    tier.breaker.record_success()
    if not isinstance(response, AIMessage):
        raise TypeError(f"{tier.label} returned {type(response).__name__}, not an AIMessage")
    allowed = {name: TOOL_ARGS[name] for name in names}
    message = normalize_tool_calls(response, allowed)
    fallback_used = bool(state.get("fallback_used"))
    message.response_metadata = {
        **message.response_metadata,
        "model_used": tier.label,
        "fallback_used": fallback_used,
    }
    return {
        "messages": [message],
        "model_calls": state.get("model_calls", 0) + 1,
        "model_used": tier.label,
    }


def after_model_call(state: State) -> Literal["tools", "done"]:
    """Go to the tool guard when the model asked for tools, else finish the turn."""
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return "done"
