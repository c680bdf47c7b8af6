"""Model call: ask the current tier for the next step, with the tools the user may use."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.runnables.config import ensure_config, merge_configs
from langgraph.runtime import Runtime

from graph import metrics
from graph.context import Context
from graph.prompts import system_prompt
from graph.redaction import Redactor
from graph.services import Services
from graph.state import State
from graph.window import (
    MESSAGE_TOKENS,
    fit_chars,
    fit_tokens,
    message_tokens,
    text_tokens,
    tools_tokens,
    window,
)
from models.failure_words import fallback_notice
from models.output_limit import ModelOutputTooLarge, OutputLimit, reply_chars
from models.providers import Tier
from models.resilience import (
    CircuitOpenError,
    RetryAfterTooLong,
    blames_request,
    retry_after_seconds,
)
from models.toolcalls import normalize_tool_calls
from tools.audit import AuditRecord
from tools.authorization import tools_for
from tools.schemas import TOOL_ARGS, tool_definition
from tools.usage import Limits, estimate_tokens, price, reported_tokens

log = logging.getLogger(__name__)


async def model_call(
    state: State, runtime: Runtime[Context], *, services: Services
) -> dict[str, Any]:
    """Call the current model tier on the conversation window and record who answered."""
    settings = services.settings
    context = runtime.context
    info = runtime.execution_info
    thread_id = (info.thread_id or "") if info else ""
    limits = Limits(
        settings.budget_tokens_per_thread,
        settings.budget_tokens_per_user_day,
        settings.budget_usd_per_user_day,
    )
    spent = await services.tasks.usage_totals(context.user_id, thread_id)
    used_up = spent.exceeded(limits)
    if used_up:
        metrics.BUDGET_REJECTIONS.labels(spent.exceeded_kind(limits) or "other").inc()
        await _audit_budget(services, context, thread_id, used_up, refused=True)
        refusal = AIMessage(
            content=f"I can't continue: {used_up}. Nothing more was done in this turn.",
            response_metadata={"model_used": "budget", "fallback_used": False},
        )
        return {"messages": [refusal], "model_used": "budget", "usage": spent.as_dict(limits)}
    tier = services.tiers[state.get("tier", 0)]
    names = tools_for(runtime.context.role)
    definitions = [tool_definition(name) for name in names]
    rendered_prompt = system_prompt(date.today())
    recent = window(state["messages"], settings.context_messages)
    if tier.context_tokens is not None:
        # What the tier's context must hold besides the conversation: the system prompt, the
        # tool definitions and the tokens reserved for the answer.
        fixed = (
            text_tokens(rendered_prompt)
            + MESSAGE_TOKENS
            + tools_tokens(definitions)
            + tier.reserved_tokens
        )
        recent = fit_tokens(recent, tier.context_tokens - fixed)
        needed = fixed + sum(message_tokens(m) for m in recent)
        if needed > tier.context_tokens:
            # Only the newest user message is left and it does not fit: sending it would earn
            # a 400 from the provider and a silent fallback, so the user is told instead.
            return {
                "messages": [
                    _too_long_answer(needed, fixed, tier, bool(state.get("fallback_used")))
                ],
                "model_used": tier.label,
            }
    recent = fit_chars(recent, settings.max_model_input_chars - len(rendered_prompt))
    prompt = [SystemMessage(content=rendered_prompt), *recent]
    if not tier.breaker.allow():
        metrics.MODEL_CALLS.labels(tier.name, "refused").inc()
        raise CircuitOpenError(tier.name, tier.breaker.seconds_until_half_open())
    if state.get("correction"):
        # After the latest messages, where a small model still reads it.
        prompt.append(SystemMessage(content=state["correction"]))
    model = tier.model.bind_tools(definitions)
    started = time.monotonic()
    limit = OutputLimit(settings.max_model_output_chars)
    try:
        response = await model.ainvoke(
            prompt, merge_configs(ensure_config(), {"callbacks": [limit]})
        )
        # A reply that was not streamed past the callback is measured whole.
        chars = reply_chars(response) if isinstance(response, BaseMessage) else 0
        if chars > limit.limit:
            raise ModelOutputTooLarge(chars, limit.limit)
    except ModelOutputTooLarge as exc:
        # The tier answered, so it is up; what it said is unusable, not a sign of an outage.
        tier.breaker.release()
        metrics.MODEL_CALLS.labels(tier.name, "too_large").inc()
        log.warning(
            "discarded an oversized model reply",
            extra={"user": context.user_id, "tier": tier.label, "chars": exc.chars},
        )
        answer = _oversized_answer(exc, tier.label, bool(state.get("fallback_used")))
        usage = await _record_usage(services, tier.label, prompt, answer, context, info, exc.chars)
        now = await services.tasks.usage_totals(context.user_id, thread_id)
        return {
            "messages": [answer],
            "model_calls": state.get("model_calls", 0) + 1,
            "model_used": tier.label,
            "usage": {**now.as_dict(limits), "last_call": usage, "warning": now.nearly(limits)},
        }
    except BaseException as exc:
        # A node timeout arrives as a cancellation and counts against the tier; a run cancelled
        # by its client (a hang-up with on_disconnect=cancel, an interrupt) or a request the
        # provider refused for its own content (400, context too long) says nothing about the
        # model, and must not open the breaker for everybody else.
        if _run_cancelled(exc, started, settings.model_timeout_s) or blames_request(exc):
            tier.breaker.release()
        else:
            tier.breaker.record_failure()
        metrics.model_call_failed(tier.name, exc, started, settings.model_timeout_s)
        wait = retry_after_seconds(exc) if isinstance(exc, Exception) else None
        if wait and wait > settings.retry_after_max_s:
            # Not transient, so no retry: the error handler moves on to the next tier now.
            raise RetryAfterTooLong(tier.label, wait) from exc
        if wait:
            # Honour the server's Retry-After in full before the retry policy tries again.
            await asyncio.sleep(wait)
        raise
    tier.breaker.record_success()
    if not isinstance(response, AIMessage):
        raise TypeError(f"{tier.label} returned {type(response).__name__}, not an AIMessage")
    allowed = {name: TOOL_ARGS[name] for name in names}
    message = normalize_tool_calls(response, allowed)
    message = _redacted(services.redactor, message, context, tier.label)
    usage = await _record_usage(services, tier.label, prompt, message, context, info)
    metrics.model_usage(tier.name, usage["input_tokens"], usage["output_tokens"], usage["cost_usd"])
    now = await services.tasks.usage_totals(context.user_id, thread_id)
    warning = now.nearly(limits)
    if warning and not spent.nearly(limits):
        # Crossing the threshold in this call: say so once, to the client and the audit.
        runtime.stream_writer({"type": "budget_warning", "message": warning})
        await _audit_budget(services, context, thread_id, warning, refused=False)
    fallback_used = bool(state.get("fallback_used"))
    notice = ""
    if fallback_used and not message.tool_calls:
        notice = fallback_notice(state.get("fallback_reasons", []), tier.label)
        message = message.model_copy(update={"content": f"{notice}\n\n{message.text}"})
    message.response_metadata = {
        **message.response_metadata,
        "model_used": tier.label,
        "fallback_used": fallback_used,
        **({"fallback_notice": notice} if notice else {}),
    }
    if not message.id:
        # The answer check withdraws an answer by its id.
        message.id = f"answer-{uuid.uuid4()}"
    return {
        "messages": [message],
        "model_calls": state.get("model_calls", 0) + 1,
        "model_used": tier.label,
        "usage": {**now.as_dict(limits), "last_call": usage, "warning": warning},
        "correction": "",
    }


def _too_long_answer(needed: int, fixed: int, tier: Tier, fallback_used: bool) -> AIMessage:
    """The turn's answer when the newest message cannot fit in the tier's context."""
    context = tier.context_tokens or 0
    if fixed >= context:
        text = (
            f"The model ({tier.label}) is configured with a context of {context:,} tokens, too"
            f" small for the task tools and the room its answer needs (about {fixed:,} tokens),"
            f" so nothing was done. Raise TASKAGENT_{tier.name.upper()}_CONTEXT_TOKENS to what"
            " the model server allows."
        )
    else:
        text = (
            f"Your message is too long for the model ({tier.label}): with the task tools and"
            f" room for an answer it needs about {needed:,} tokens, and the model reads at most"
            f" {context:,}. Nothing was done; please send a shorter message."
        )
    return AIMessage(
        content=text,
        response_metadata={"model_used": tier.label, "fallback_used": fallback_used},
    )


def _oversized_answer(exc: ModelOutputTooLarge, label: str, fallback_used: bool) -> AIMessage:
    """The turn's answer in place of a reply over the output limit, none of which is kept."""
    return AIMessage(
        content=(
            f"The model's reply was too long ({exc.chars:,} characters or more; the limit is"
            f" {exc.limit:,}), so it was discarded and nothing was done. Please ask for"
            " something smaller."
        ),
        response_metadata={"model_used": label, "fallback_used": fallback_used},
    )


async def _audit_budget(
    services: Any, context: Context, thread_id: str, text: str, *, refused: bool
) -> None:
    await services.tasks.audit(
        AuditRecord(
            "budget",
            user=context.user_id,
            role=context.role,
            thread_id=thread_id,
            success=not refused,
            error=text if refused else "",
            result_summary="" if refused else text,
        )
    )


def _redacted(redactor: Redactor, message: AIMessage, context: Context, tier: str) -> AIMessage:
    """Return `message` without secrets or prompt echoes, in its text and its tool arguments.

    Before anything acts on it: a task never stores a key or the prompt the model wrote into it.
    """
    update: dict[str, Any] = {}
    if isinstance(message.content, str) and message.content:
        cleaned = redactor.text(message.content)
        if cleaned != message.content:
            update["content"] = cleaned
    calls = [{**call, "args": redactor.value(call["args"])} for call in message.tool_calls]
    if calls != message.tool_calls:
        update["tool_calls"] = calls
    if not update:
        return message
    log.warning("redacted an answer", extra={"user": context.user_id, "tier": tier})
    return message.model_copy(update=update)


def _run_cancelled(exc: BaseException, started: float, timeout_s: float) -> bool:
    """Whether `exc` is the run being cancelled, not the node reaching its time limit."""
    return isinstance(exc, asyncio.CancelledError) and (
        time.monotonic() - started < 0.95 * timeout_s
    )


async def _record_usage(
    services: Any,
    tier: str,
    prompt: Sequence[BaseMessage],
    message: AIMessage,
    context: Context,
    info: Any,
    output_chars: int | None = None,
) -> dict[str, Any]:
    reported: Any = message.usage_metadata or {}
    input_tokens: int | None = None
    output_tokens: int | None = None
    if reported.get("input_tokens") is not None:
        # A provider's own count is used only when believable: a negative or absurd count
        # would lower (or blow) the user's budget, so an estimate stands in for it.
        input_tokens = reported_tokens(reported["input_tokens"])
        output_tokens = reported_tokens(reported.get("output_tokens", 0))
    estimated = input_tokens is None or output_tokens is None
    if input_tokens is None:
        input_tokens = sum(estimate_tokens(str(m.content)) for m in prompt)
    if output_tokens is None and output_chars is not None:
        # A discarded reply still cost what it streamed: estimate_tokens' 4 characters a token.
        output_tokens = max(1, output_chars // 4)
    if output_tokens is None:
        output_tokens = estimate_tokens(str(message.content) + str(message.tool_calls))
    cost = price(services.settings.prices, tier, input_tokens, output_tokens)
    await services.tasks.record_usage(
        user=context.user_id,
        thread_id=(info.thread_id or "") if info else "",
        run_id=(info.run_id or "") if info else "",
        tier=tier,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        estimated=estimated,
    )
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": round(cost, 8),
        "estimated": estimated,
    }


def after_model_call(state: State) -> Literal["tools", "done"]:
    """Go to the tool guard when the model asked for tools, else finish the turn."""
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        return "tools"
    return "done"
