"""Answer check: an answer that claims a write this turn did not make is not delivered as is."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import date
from difflib import SequenceMatcher
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langgraph.runtime import Runtime

from graph import metrics
from graph.claims import honest_answer, turn_writes, unsupported_claims
from graph.context import Context
from graph.services import Services
from graph.state import State
from models.offline.replies import ToolOutcome, results_reply
from models.providers import Tier
from tools.references import current_request
from tools.schemas import TOOL_ARGS

log = logging.getLogger(__name__)

CORRECTION_NOTE = (
    "Your last answer said a task was created, changed, completed or deleted, but no tool did"
    " that in this turn. If the user asked for it, call the tool now; otherwise answer the user"
    " again without saying anything was changed."
)
_TOOL_NAME = re.compile(r"\b(?:" + "|".join(TOOL_ARGS) + r")\b")

NO_ANSWER = "I don't have an answer for that; nothing was changed."


def _turn_outcomes(messages: Sequence[AnyMessage]) -> list[ToolOutcome]:
    """The tool calls answered since the latest user message, with their parsed results."""
    start = next(
        (i + 1 for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        0,
    )
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    outcomes: list[ToolOutcome] = []
    for message in messages[start:]:
        for call in getattr(message, "tool_calls", None) or []:
            calls[str(call.get("id"))] = (str(call.get("name")), dict(call.get("args") or {}))
        if not isinstance(message, ToolMessage):
            continue
        name, args = calls.get(message.tool_call_id, (str(message.name), {}))
        try:
            payload = json.loads(message.text)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {"ok": False, "error": str(message.content)[:200] or "no result"}
        outcomes.append(ToolOutcome(name, args, payload))
    return outcomes


def said_from_results(messages: Sequence[AnyMessage], today: date) -> str:
    """Say what this turn's tool calls did, for a model that answered nothing at all."""
    outcomes = _turn_outcomes(messages)
    if not outcomes:
        return NO_ANSWER
    said = results_reply(outcomes, today)
    return (
        f"Done: {said[0].lower()}{said[1:]}" if all(o.payload.get("ok") for o in outcomes) else said
    )


def _replace(answer: AIMessage, text: str, **flags: Any) -> list[BaseMessage]:
    """Withdraw `answer` and put `text` in its place, keeping any fallback notice first."""
    withdrawn: list[BaseMessage] = [RemoveMessage(id=answer.id)] if answer.id else []
    notice = str(answer.response_metadata.get("fallback_notice") or "")
    honest = AIMessage(
        content=f"{notice}\n\n{text}" if notice else text,
        response_metadata={**answer.response_metadata, **flags},
    )
    return [*withdrawn, honest]


def unusable(answer: str, request: str) -> str | None:
    """Why `answer` does not answer `request` at all (in words for the user), or None.

    Small models echo the request back, or tell the user how to call a tool instead of
    calling it; neither is an answer, whatever the words.
    """
    said, asked = _plain(answer), _plain(request)
    if said and (said == asked or SequenceMatcher(None, said, asked).ratio() >= 0.75):
        return "it only repeated the request"
    if _TOOL_NAME.search(answer):
        return "it described a tool call instead of making it"
    return None


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", text.casefold()).split())


def _hand_off(
    state: State, answer: AIMessage, why: str, tiers: list[Tier]
) -> dict[str, Any] | None:
    """Withdraw `answer` and let the next tier answer the turn, as a failed call would."""
    current = state.get("tier", 0)
    if current + 1 >= len(tiers):
        return None
    metrics.FALLBACKS.labels(tiers[current].name, tiers[current + 1].name).inc()
    log.warning("model answer unusable", extra={"tier": tiers[current].label, "reason": why})
    return {
        "messages": [RemoveMessage(id=answer.id)] if answer.id else [],
        "tier": current + 1,
        "fallback_used": True,
        "fallback_reasons": [*state.get("fallback_reasons", []), f"{tiers[current].label} — {why}"],
        "correction": "",
        "corrections": 0,
    }


async def answer_check(
    state: State, runtime: Runtime[Context], *, services: Services
) -> dict[str, Any]:
    """Withdraw an answer claiming an unmade write: one corrective turn, then an honest answer.

    An empty answer is never delivered: it becomes a sentence built from the turn's results.
    An answer that is no answer (an echo, instructions for calling a tool) goes to the next
    tier like a failed call.
    """
    messages = state["messages"]
    answer = messages[-1] if messages else None
    if not isinstance(answer, AIMessage) or answer.tool_calls:
        return {"correction": ""}
    if not answer.text.strip():
        said = said_from_results(messages, date.today())
        return {"messages": _replace(answer, said, empty_answer_replaced=True), "correction": ""}
    # Only a turn where the model did nothing at all: after a tool ran, an answer in the
    # user's words ("Created 'Call the supplier'") is a confirmation, not an echo.
    why = None if _turn_outcomes(messages) else unusable(answer.text, current_request(messages))
    handed = _hand_off(state, answer, why, services.tiers) if why else None
    if handed is not None:
        return handed
    writes = turn_writes(messages)
    claims = unsupported_claims(answer.text, writes)
    if not claims:
        return {"correction": ""}
    withdrawn = [RemoveMessage(id=answer.id)] if answer.id else []
    log.warning(
        "withdrew an answer claiming an action that did not happen",
        extra={
            "user": runtime.context.user_id,
            "claims": [claim.kind for claim in claims],
            "tier": state.get("model_used", ""),
        },
    )
    corrections = state.get("corrections", 0)
    if corrections < 1:
        return {"messages": withdrawn, "correction": CORRECTION_NOTE, "corrections": 1}
    text = honest_answer(claims, writes)
    return {
        "messages": _replace(answer, text, claim_withdrawn=True),
        "correction": "",
        "corrections": corrections + 1,
    }


def after_answer_check(state: State) -> Literal["retry", "done"]:
    """Give the model its corrective turn when the check withdrew the answer, else finish."""
    if state.get("correction"):
        return "retry"
    # The answer was withdrawn for the next tier: someone still has to answer the turn.
    return "done" if isinstance(state["messages"][-1], AIMessage) else "retry"
