"""Fallback: record why a tier failed and move to the next one, or give an emergency answer."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.errors import NodeError
from langgraph.graph import END
from langgraph.types import Command

from graph import metrics
from graph.services import Services
from graph.state import State
from models.failure_words import plain_reason
from tools.storage_errors import classify

log = logging.getLogger(__name__)

EMERGENCY_ANSWER = (
    "Sorry, no model is able to answer right now, so nothing was changed. "
    "Please try again in a moment."
)


async def fallback(state: State, error: NodeError, *, services: Services) -> Command[Any]:
    """Advance to the next model tier after the current one failed for good."""
    if classify(error.error) is not None:
        # The database, not the model, failed (the offline engine reads tasks too): no other
        # tier would fare better, and the run stops to be resumed once storage is back.
        raise error.error
    tiers = services.tiers
    current = state.get("tier", 0)
    label = tiers[current].label if current < len(tiers) else "unknown"
    # A provider's error text can echo the key it was sent ("Incorrect API key provided:
    # sk-..."): redacted whole before it is cut, so no fragment of a key survives.
    detail = services.redactor.text(str(error.error))[:200]
    reason = f"{label}: {type(error.error).__name__}: {detail}"
    log.warning("model tier failed", extra={"tier": label, "reason": reason})
    failures = [*state.get("failures", []), reason]
    said = [*state.get("fallback_reasons", []), f"{label} — {plain_reason(error.error)}"]
    name = tiers[current].name if current < len(tiers) else "unknown"
    if current + 1 < len(tiers):
        metrics.FALLBACKS.labels(name, tiers[current + 1].name).inc()
        return Command(
            goto="model_call",
            update={
                "tier": current + 1,
                "fallback_used": True,
                "failures": failures,
                "fallback_reasons": said,
            },
        )
    metrics.FALLBACKS.labels(name, "none").inc()
    answer = AIMessage(
        content=EMERGENCY_ANSWER,
        response_metadata={"model_used": "none", "fallback_used": True},
    )
    return Command(
        goto=END,
        update={
            "messages": [answer],
            "failures": failures,
            "fallback_reasons": said,
            "fallback_used": True,
            "model_used": "none",
        },
    )
