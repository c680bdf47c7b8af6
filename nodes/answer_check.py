"""Answer check: an answer that claims a write this turn did not make is not delivered as is."""

from __future__ import annotations

import logging
from typing import Any, Literal

from langchain_core.messages import AIMessage, RemoveMessage
from langgraph.runtime import Runtime

from graph.claims import honest_answer, turn_writes, unsupported_claims
from graph.context import Context
from graph.state import State

log = logging.getLogger(__name__)

CORRECTION_NOTE = (
    "Your last answer said something was done, but no tool was called for that in this turn: "
    "call the tool now, or tell the user you did not do it."
)


async def answer_check(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Withdraw an answer claiming an unmade write: one corrective turn, then an honest answer."""
    messages = state["messages"]
    answer = messages[-1] if messages else None
    if not isinstance(answer, AIMessage) or answer.tool_calls:
        return {"correction": ""}
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
    notice = str(answer.response_metadata.get("fallback_notice") or "")
    honest = AIMessage(
        content=f"{notice}\n\n{text}" if notice else text,
        response_metadata={**answer.response_metadata, "claim_withdrawn": True},
    )
    return {"messages": [*withdrawn, honest], "correction": "", "corrections": corrections + 1}


def after_answer_check(state: State) -> Literal["retry", "done"]:
    """Give the model its corrective turn when the check withdrew the answer, else finish."""
    return "retry" if state.get("correction") else "done"
