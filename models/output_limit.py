"""Bound what one model reply may carry, before LangChain assembles or parses it.

LangChain merges a streamed reply by concatenating each chunk's tool-call arguments onto a
copy of everything before it, and re-parses partial argument text one character at a time
(``parse_partial_json``): a reply of a few megabytes takes minutes of CPU on the event
loop, stalling every request. `OutputLimit` counts the characters as they stream and stops
the reply once it passes the limit; `reply_chars` measures a reply that was not streamed.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk


class ModelOutputTooLarge(Exception):
    """A model reply carried more text and tool-call arguments than the limit allows."""

    def __init__(self, chars: int, limit: int) -> None:
        super().__init__(f"model reply of {chars} characters or more; the limit is {limit}")
        self.chars = chars
        self.limit = limit


def _content_chars(content: str | list[str | dict[str, Any]]) -> int:
    if isinstance(content, str):
        return len(content)
    return sum(
        len(block) if isinstance(block, str) else len(str(block.get("text") or ""))
        for block in content
    )


def reply_chars(message: BaseMessage) -> int:
    """Characters of text and tool-call arguments in a model reply (or one streamed chunk)."""
    size = _content_chars(message.content)
    if isinstance(message, AIMessageChunk):
        return size + sum(len(chunk.get("args") or "") for chunk in message.tool_call_chunks)
    size += sum(len(json.dumps(call["args"])) for call in getattr(message, "tool_calls", []))
    invalid = getattr(message, "invalid_tool_calls", [])
    return size + sum(len(call.get("args") or "") for call in invalid)


class OutputLimit(AsyncCallbackHandler):
    """Stop a streamed model reply as soon as it passes `limit` characters.

    A fresh handler per model call. Raising from a callback ends LangChain's stream loop
    before it merges the chunks, so the oversized reply is never assembled.
    """

    raise_error = True
    run_inline = True

    def __init__(self, limit: int) -> None:
        """Count up to `limit` characters of text and tool-call arguments."""
        self.limit = limit
        self.chars = 0

    async def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Add this chunk's characters; raise ModelOutputTooLarge past the limit."""
        if isinstance(chunk, ChatGenerationChunk):
            self.chars += reply_chars(chunk.message)
        else:
            self.chars += _content_chars(token)
        if self.chars > self.limit:
            raise ModelOutputTooLarge(self.chars, self.limit)
