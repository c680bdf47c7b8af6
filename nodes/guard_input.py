"""Input guard: check the newest user message before anything else sees it."""

from __future__ import annotations

import logging
import unicodedata
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.injection import detect_injection
from graph.services import Services
from graph.state import GuardVerdict, State

log = logging.getLogger(__name__)

INJECTION_REASON = (
    "This message looks like an attempt to override my instructions, so I did not act on it."
)


def check_message(text: str, max_chars: int) -> GuardVerdict:
    """Return the verdict on one user message: size and character limits."""
    if not text.strip():
        return GuardVerdict(allowed=False, reason="The message is empty.", flags=["empty"])
    if len(text) > max_chars:
        return GuardVerdict(
            allowed=False,
            reason=f"The message has {len(text)} characters; the limit is {max_chars}.",
            flags=["too_long"],
        )
    controls = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\r\t"]
    if controls:
        return GuardVerdict(
            allowed=False, reason="The message contains control characters.", flags=["charset"]
        )
    return GuardVerdict(allowed=True)


def check_injection(text: str) -> GuardVerdict:
    """Return the verdict on prompt injection: clear attacks refused, softer signals flagged."""
    injection = detect_injection(text)
    if injection.block:
        return GuardVerdict(allowed=False, reason=INJECTION_REASON, flags=injection.flags)
    return GuardVerdict(allowed=True, flags=injection.flags)


def _log_injection(verdict: GuardVerdict, context: Context) -> None:
    # Flags only, never the text: the log must not become a copy of the attack.
    log.warning(
        "prompt-injection patterns in user message: %s (%s)",
        ", ".join(verdict.flags),
        "refused" if not verdict.allowed else "allowed",
        extra={
            "flags": verdict.flags,
            "blocked": not verdict.allowed,
            "user": context.user_id,
            "request_id": context.request_id,
        },
    )


def new_user_messages(messages: list[Any]) -> list[HumanMessage]:
    """Return the user messages this turn added: the run of them at the end of the thread."""
    added: list[HumanMessage] = []
    for message in reversed(messages):
        if not isinstance(message, HumanMessage):
            break
        added.append(message)
    return added[::-1]


def check_turn(messages: list[HumanMessage], max_chars: int) -> GuardVerdict:
    """Return the verdict on every user message of a turn: the first refusal, or all flags."""
    if not messages:
        return GuardVerdict(
            allowed=False, reason="There is no new user message.", flags=["no_input"]
        )
    flags: list[str] = []
    for message in messages:
        text = message.text
        verdict = check_message(text, max_chars)
        if verdict.allowed:
            verdict = check_injection(text)
        if not verdict.allowed:
            return verdict
        flags += [flag for flag in verdict.flags if flag not in flags]
    return GuardVerdict(allowed=True, flags=flags)


async def guard_input(
    state: State, runtime: Runtime[Context], *, services: Services
) -> dict[str, Any]:
    """Check the turn's user messages; refuse with a clear answer if one breaks a limit.

    Every user message the turn added is checked (an agent-protocol client may send
    several). Messages that look like prompt injection are refused when the attack is
    clear and otherwise pass with their flags on the verdict.
    """
    limit = services.settings.max_message_chars
    verdict = check_turn(new_user_messages(state["messages"]), limit)
    if verdict.flags and (verdict.allowed or verdict.reason == INJECTION_REASON):
        _log_injection(verdict, runtime.context)
    if verdict.allowed:
        return {"verdict": verdict}
    refusal = AIMessage(
        content=f"I can't process that message: {verdict.reason}",
        response_metadata={"model_used": "guard", "fallback_used": False},
    )
    return {
        "verdict": verdict,
        "messages": [refusal],
        "model_used": "guard",
        "fallback_used": False,
        "failures": [],
    }


def after_guard_input(state: State) -> Literal["ok", "blocked"]:
    """Route on the input guard's verdict."""
    return "ok" if state["verdict"].allowed else "blocked"
