"""The bounded working window of a thread's messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from langchain_core.messages import BaseMessage, HumanMessage

M = TypeVar("M", bound=BaseMessage)


def window_start(messages: Sequence[BaseMessage], limit: int) -> int:
    """Return where a window of at most `limit` messages starts: at a user turn.

    Cutting at a user message keeps every tool call together with its result. If the
    newest turn alone is longer than `limit`, the window starts at that turn anyway.
    """
    if len(messages) <= limit:
        return 0
    for index in range(len(messages) - limit, len(messages)):
        if isinstance(messages[index], HumanMessage):
            return index
    for index in range(len(messages) - limit - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return index
    return 0


def window(messages: Sequence[M], limit: int) -> list[M]:
    """Return the newest messages, at most `limit` (cut at a user turn)."""
    return list(messages[window_start(messages, limit) :])
