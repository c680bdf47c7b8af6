"""ChatOpenAI that refuses an oversized stream chunk before LangChain parses it."""

from __future__ import annotations

from typing import Any

from langchain_core.outputs import ChatGenerationChunk
from langchain_openai import ChatOpenAI
from pydantic import Field

from models.output_limit import ModelOutputTooLarge


def _delta_chars(chunk: dict[str, Any]) -> int:
    size = 0
    for choice in chunk.get("choices") or []:
        delta = (choice.get("delta") if isinstance(choice, dict) else None) or {}
        size += len(delta.get("content") or "")
        for call in delta.get("tool_calls") or []:
            size += len(((call or {}).get("function") or {}).get("arguments") or "")
    return size


class BoundedChatOpenAI(ChatOpenAI):
    """ChatOpenAI whose stream chunks may carry at most `max_output_chars` characters.

    LangChain re-parses a chunk's partial tool-call arguments by trying ever shorter
    prefixes (``parse_partial_json``), quadratic in the chunk's size: one multi-megabyte
    chunk would hold the event loop for minutes. `OutputLimit` bounds the whole reply, but
    only sees a chunk after that parse, so a single chunk is measured here first.
    """

    max_output_chars: int = Field(default=64_000, ge=1)

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        chars = _delta_chars(chunk)
        if chars > self.max_output_chars:
            raise ModelOutputTooLarge(chars, self.max_output_chars)
        return super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
