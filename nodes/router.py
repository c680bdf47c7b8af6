"""Router: answer trivial turns directly, start the agent loop for everything else."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.messages.base import message_to_dict
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from graph.context import Context
from graph.services import Services
from graph.state import State
from graph.window import window_start

_GREETING = re.compile(r"^\s*(hi|hello|hey|hiya|good (morning|afternoon|evening))\b[\s!.,]*$", re.I)
# Thanks and nothing else: any other word may be a request ("thanks, add milk"), which the
# agent must see.
_THANKS_WORDS = (
    r"(?:many\s+thanks|thanks|thank\s+you|thx|ty|cheers|much\s+appreciated|appreciate\s+it)"
    r"(?:\s+(?:a\s+lot|so\s+much|very\s+much|again|lots|a\s+bunch|a\s+million))*"
)
_PLEASANT = r"(?:great|perfect|awesome|cool|nice|ok(?:ay)?|lovely|brilliant|excellent|wonderful)"
_THANKS = re.compile(
    rf"^\s*(?:{_PLEASANT}[\s,!.]+)*{_THANKS_WORDS}(?:[\s,!.]+(?:{_PLEASANT}|{_THANKS_WORDS}))*"
    r"[\s!.,]*$",
    re.I,
)

GREETING_REPLY = (
    'Hello! I manage your tasks. Try: "create a high-priority task for the quarterly review '
    'due next Friday", "what\'s overdue?" or "mark TASK-0001 done".'
)
THANKS_REPLY = "You're welcome! Tell me whenever you want to add, change or review a task."


def direct_reply(text: str) -> str | None:
    """Return a canned reply for a greeting or thanks, or None if the turn needs the agent.

    Only a message that is a greeting or thanks and nothing else is answered here.
    """
    if _GREETING.match(text):
        return GREETING_REPLY
    if _THANKS.match(text):
        return THANKS_REPLY
    return None


async def router(state: State, runtime: Runtime[Context], *, services: Services) -> dict[str, Any]:
    """Reset per-turn counters, trim the working window, and pick direct or agent handling."""
    messages = state["messages"]
    limit = services.settings.context_messages
    update: dict[str, Any] = {
        "tier": _start_tier(services.tiers, runtime.context.model_tier),
        "model_calls": 0,
        "fallback_used": False,
        "failures": [],
        "executed_calls": [],
        "proposed_calls": [],
        "pending_calls": [],
        "halted": False,
        "usage": {},
        "correction": "",
        "corrections": 0,
        "fallback_reasons": [],
    }
    kept: Any = None
    if len(messages) > 2 * limit:
        # The state keeps a bounded window so per-step cost does not grow with the thread.
        # Trimming in batches (at twice the window) makes each Overwrite a rare reset point:
        # checkpoints before it are no longer needed to rebuild the state and can be pruned.
        start = window_start(messages, limit)
        info = runtime.execution_info
        await services.tasks.archive_messages(
            info.thread_id if info and info.thread_id else "",
            [(m.id or "", json.dumps(message_to_dict(m))) for m in messages[:start]],
        )
        kept = Overwrite(list(messages[start:]))
        update["history_floor"] = info.checkpoint_id if info else ""
    last = messages[-1]
    text = last.text
    reply = direct_reply(text)
    if reply is None:
        if kept is not None:
            update["messages"] = kept
        return {**update, "route": "agent"}
    answer = AIMessage(
        content=reply, response_metadata={"model_used": "router", "fallback_used": False}
    )
    update["messages"] = Overwrite([*kept.value, answer]) if kept is not None else [answer]
    return {**update, "route": "direct", "model_used": "router"}


def _start_tier(tiers: list[Any], wanted: str | None) -> int:
    if wanted:
        for index, tier in enumerate(tiers):
            if tier.name == wanted:
                return index
    return 0


def after_router(state: State) -> Literal["direct", "agent"]:
    """Route on the router's classification."""
    route = state.get("route")
    if route not in ("direct", "agent"):
        raise ValueError(f"router produced no route: {route!r}")
    return route
