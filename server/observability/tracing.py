"""LangSmith tracing of turns: off unless the standard LANGSMITH_* variables switch it on.

With `LANGSMITH_TRACING=true` (plus `LANGSMITH_API_KEY`, optionally `LANGSMITH_PROJECT` and
`LANGSMITH_ENDPOINT`) every run becomes one trace whose root, "taskagent turn", carries what a
person filters on: thread, run, user, role, model tier and whether a fallback answered. The
graph's own runs (nodes, model and tool calls) nest under it. Everything sent passes through
the process's redactor first (`graph.redaction`), so keys, secret-named fields and echoes
of the system prompt never leave the process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langsmith import Client, trace
from langsmith.run_trees import RunTree
from langsmith.utils import tracing_is_enabled

from graph.context import Context
from graph.redaction import Redactor


class Tracer:
    """The process's LangSmith client, created only when tracing is switched on."""

    def __init__(self, redactor: Redactor) -> None:
        self._client: Client | None = None
        self._redactor = redactor

    @property
    def client(self) -> Client:
        """The client, created on first use: it reads the LANGSMITH_* environment then."""
        if self._client is None:
            # The anonymizer sees inputs, outputs, metadata and error texts (a provider's
            # error can echo the key it was sent), already turned into plain JSON.
            self._client = Client(anonymizer=self._redactor.value)
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
