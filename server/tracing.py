"""LangSmith tracing of turns: off unless the standard LANGSMITH_* variables switch it on.

With `LANGSMITH_TRACING=true` (plus `LANGSMITH_API_KEY`, optionally `LANGSMITH_PROJECT` and
`LANGSMITH_ENDPOINT`) every run becomes one trace whose root, "taskagent turn", carries what a
person filters on: thread, run, user, role, model tier and whether a fallback answered. The
graph's own runs (nodes, model and tool calls) nest under it. Everything sent passes through
`scrub` first, so keys and secret-looking fields never leave the process.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from langsmith import Client, trace
from langsmith.run_trees import RunTree
from langsmith.utils import tracing_is_enabled

from graph.context import Context
from graph.settings import Settings
from nodes.model_call import configured_secrets
from tools.audit import SECRET_VALUES

REDACTED = "[redacted]"
# Narrower than the audit log's pattern: "max_tokens" and "input_tokens" are not secrets.
_SECRET_KEYS = re.compile(
    r"^(pass(word)?|secret|api[_-]?key|authorization|credentials?|(access|refresh|auth)[_-]?token)$"
    r"|(_|^)(api[_-]?key|secret|password)$",
    re.I,
)


def scrubber(secrets: list[str]) -> Callable[[Any], Any]:
    """Return a function that copies a payload with secrets and secret-named fields redacted."""
    literals = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def scrub_text(text: str) -> str:
        for secret in literals:
            text = text.replace(secret, REDACTED)
        return SECRET_VALUES.sub(REDACTED, text)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: REDACTED if _SECRET_KEYS.search(str(k)) else scrub(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            return scrub_text(value)
        if hasattr(value, "model_dump"):
            # Messages and other pydantic objects reach the client before serialization.
            return scrub(value.model_dump())
        return value

    return scrub


class Tracer:
    """The process's LangSmith client, created only when tracing is switched on."""

    def __init__(self, settings: Settings) -> None:
        scrub = scrubber(configured_secrets(settings))
        self._client: Client | None = None
        self._scrub = scrub

    @property
    def client(self) -> Client:
        """The client, created on first use: it reads the LANGSMITH_* environment then."""
        if self._client is None:
            self._client = Client(
                hide_inputs=self._scrub, hide_outputs=self._scrub, hide_metadata=self._scrub
            )
        return self._client

    @asynccontextmanager
    async def turn(
        self, *, thread_id: str, run_id: str, context: Context, inputs: dict[str, Any]
    ) -> AsyncIterator[RunTree | None]:
        """Open the root run of one turn, or yield None when tracing is off."""
        if not tracing_is_enabled():
            yield None
            return
        tier = context.model_tier or "default"
        metadata = {
            "thread_id": thread_id,
            "run_id": run_id,
            "user": context.user_id,
            "role": context.role,
            "requested_tier": tier,
            "request_id": context.request_id,
        }
        tags = [f"user:{context.user_id}", f"role:{context.role}"]
        with trace(
            "taskagent turn",
            "chain",
            inputs=inputs,
            metadata=metadata,
            tags=tags,
            client=self.client,
        ) as root:
            yield root

    def flush(self) -> None:
        """Send what is queued; called on shutdown so the last turns are not lost."""
        if self._client is not None:
            self._client.flush()


def finish(
    root: RunTree | None, values: dict[str, Any], interrupt: dict[str, Any] | None, tier: str
) -> None:
    """Record how the turn ended on its root run: tier used, fallback, interrupt, answer."""
    if root is None:
        return
    model = str(values.get("model_used") or "none")
    fallback = bool(values.get("fallback_used", False))
    root.metadata.update(
        model_tier=tier, model_used=model, fallback_used=fallback, interrupted=bool(interrupt)
    )
    root.add_tags([f"tier:{tier}", "fallback" if fallback else "no-fallback"])
    messages = values.get("messages") or []
    answer = getattr(messages[-1], "content", "") if messages else ""
    root.end(
        outputs={
            "answer": answer if not interrupt else "",
            "interrupt": interrupt,
            "model_used": model,
            "fallback_used": fallback,
        }
    )
