"""The bounded working window of a thread's messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

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


def message_chars(message: BaseMessage) -> int:
    """Return the size of a message as a model reads it: its text plus its tool calls."""
    content = message.content
    size = len(content) if isinstance(content, str) else len(json.dumps(content, default=str))
    if isinstance(message, AIMessage) and message.tool_calls:
        size += len(json.dumps([[c["name"], c["args"]] for c in message.tool_calls], default=str))
    return size


def fit_chars(messages: Sequence[M], budget: int) -> list[M]:
    """Return the newest messages that fit in `budget` characters (see `message_chars`).

    Whole turns go first, oldest first, cut at a user message so every tool call keeps
    its result. If the newest turn alone is too large, the texts of its earlier messages
    (tool results, the model's own words) are shortened, oldest first. The newest user
    message is always kept whole: the input guard bounds it.
    """
    kept = list(messages)
    sizes = [message_chars(m) for m in kept]
    total = sum(sizes)
    if total <= budget:
        return kept
    newest_user = max((i for i, m in enumerate(kept) if isinstance(m, HumanMessage)), default=-1)
    start = 0
    for index in range(1, newest_user + 1):
        if total <= budget:
            break
        if isinstance(kept[index], HumanMessage):
            total -= sum(sizes[start:index])
            start = index
    kept, sizes = kept[start:], sizes[start:]
    newest_user -= start
    for index, message in enumerate(kept):
        if total <= budget:
            break
        if index == newest_user:
            continue
        shortened = _shorten(message, sizes[index] - (total - budget))
        if shortened is not None:
            total += message_chars(shortened) - sizes[index]
            kept[index] = shortened
    return kept


_CUT = " […cut to fit the model input limit]"


def _shorten(message: M, room: int) -> M | None:
    """Return `message` with its text cut to about `room` characters, or None if it can't be."""
    text = str(message.text)
    calls = message_chars(message.model_copy(update={"content": ""}))
    keep = max(0, room - calls - len(_CUT))
    if not text or keep >= len(text):
        return None
    return message.model_copy(update={"content": text[:keep] + _CUT})
