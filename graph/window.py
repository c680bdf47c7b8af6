"""The bounded working window of a thread's messages, by count, characters and tokens."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

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


def _model_text(message: BaseMessage) -> str:
    """The text of a message as a model reads it: its content plus its tool calls."""
    content = message.content
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    if isinstance(message, AIMessage) and message.tool_calls:
        text += json.dumps([[c["name"], c["args"]] for c in message.tool_calls], default=str)
    return text


def message_chars(message: BaseMessage) -> int:
    """Return the size of a message as a model reads it: its text plus its tool calls."""
    return len(_model_text(message))


# Token estimates err on the side of too many: an underestimate is a prompt the provider
# refuses (a 400 and a fallback), an overestimate only a turn dropped a little early. A flat
# characters-per-token ratio does not work: Qwen2.5 (llama-server's /tokenize) reads our
# prose at 4.3-4.7 characters a token but a task list as JSON at 2.3, because it splits
# numbers into single digits and ids, dates and timestamps are full of them. So: a digit or a
# non-ASCII character (accents, CJK, emoji) is a token, punctuation half a token, letters and
# spaces 3.5 to a token. Measured against Qwen2.5's tokenizer this overestimates every
# sample by 3-29% (prompt 287/222, tool schemas 1,885/1,583, ten tasks 1,631/1,576).
CHARS_PER_TOKEN = 3.5
"""Letters and spaces per token."""
PUNCTUATION_TOKENS = 0.5
"""Tokens per ASCII punctuation mark (quotes, braces, colons in JSON)."""
MESSAGE_TOKENS = 8
"""Tokens a chat template adds around each message (Qwen's role markers take 5)."""
TOOLS_TEMPLATE_TOKENS = 160
"""Tokens a chat template adds around the tool definitions (Qwen's instructions take ~110)."""


def text_tokens(text: str) -> int:
    """Return a conservative count of the tokens `text` costs a model (see CHARS_PER_TOKEN)."""
    digits = sum(char.isdigit() for char in text)
    other = sum(not char.isascii() for char in text)
    punctuation = sum(char.isascii() and not char.isalnum() and not char.isspace() for char in text)
    plain = len(text) - digits - other - punctuation
    return digits + other + math.ceil(plain / CHARS_PER_TOKEN + punctuation * PUNCTUATION_TOKENS)


def message_tokens(message: BaseMessage) -> int:
    """Return the tokens a message costs in a prompt: its text, tool calls and framing."""
    return text_tokens(_model_text(message)) + MESSAGE_TOKENS


def tools_tokens(definitions: Sequence[dict[str, Any]]) -> int:
    """Return the tokens the tool definitions cost in a prompt, as the model receives them."""
    if not definitions:
        return 0
    return TOOLS_TEMPLATE_TOKENS + sum(text_tokens(json.dumps(d)) for d in definitions)


def fit_chars(messages: Sequence[M], budget: int) -> list[M]:
    """Return the newest messages that fit in `budget` characters (see `message_chars`)."""
    return fit(messages, budget, message_chars)


def fit_tokens(messages: Sequence[M], budget: int) -> list[M]:
    """Return the newest messages that fit in `budget` tokens (see `message_tokens`)."""
    return fit(messages, budget, message_tokens)


def fit(messages: Sequence[M], budget: int, size: Callable[[BaseMessage], int]) -> list[M]:
    """Return the newest messages whose `size` adds up to at most `budget`.

    Whole turns go first, oldest first, cut at a user message so every tool call keeps
    its result. If the newest turn alone is too large, its earlier messages are shortened,
    oldest first: a list result becomes its count and the ids and titles that fit, other
    texts (tool results, the model's own words) are cut. The newest user message is always
    kept whole: the input guard bounds it. The result may still exceed `budget` when that
    message alone does; the caller decides what to tell the user.
    """
    kept = list(messages)
    sizes = [size(m) for m in kept]
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
        shortened = _shorten(message, sizes[index] - (total - budget), size)
        if shortened is not None:
            new_size = size(shortened)
            total += new_size - sizes[index]
            kept[index], sizes[index] = shortened, new_size
    return kept


_CUT = " […cut to fit the model input limit]"


def _shorten(message: M, room: int, size: Callable[[BaseMessage], int]) -> M | None:
    """Return `message` shortened to about `room` (in `size` units), or None if it can't be."""
    text = str(message.text)
    if not text:
        return None
    summary = _list_summary(message, text, room, size)
    if summary is not None:
        return summary
    # The longest head of the text that fits, found by bisection (sizes are monotonic).
    low, high = 0, len(text) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if size(message.model_copy(update={"content": text[:middle] + _CUT})) <= room:
            low = middle
        else:
            high = middle - 1
    shortened = message.model_copy(update={"content": text[:low] + _CUT})
    return shortened if size(shortened) < size(message) else None


_SUMMARY_FIELDS = ("id", "title", "status", "priority", "due_date")


def _list_summary(message: M, text: str, room: int, size: Callable[[BaseMessage], int]) -> M | None:
    """A tool result holding a list (of tasks) as its count plus what of each item fits.

    Cutting such JSON mid-way would leave the model a broken document and no count; this
    keeps valid JSON: first the main fields of every item, then ids and titles, then the
    ids and titles of as many items as fit, always with the total and a note saying so.
    """
    if not isinstance(message, ToolMessage):
        return None
    try:
        result = json.loads(text)
    except ValueError:
        return None
    if not isinstance(result, dict):
        return None
    key = next(
        (
            k
            for k, v in result.items()
            if isinstance(v, list) and all(isinstance(i, dict) for i in v)
        ),
        None,
    )
    if key is None or not result[key]:
        return None
    items: list[dict[str, Any]] = result[key]
    head = {k: v for k, v in result.items() if k != key}
    head.setdefault("count", len(items))

    def variant(shown: list[dict[str, Any]], fields: Sequence[str]) -> M:
        listed = [{f: i[f] for f in fields if i.get(f) not in (None, "", [])} for i in shown]
        note = f"shortened to fit the model's context: {', '.join(fields)} of {len(shown)}"
        note += f" of {len(items)} {key}"
        if len(shown) < len(items):
            note += "; ask for fewer (filters or a smaller limit) to see the rest"
        body = {**head, key: listed, "note": note}
        return message.model_copy(update={"content": json.dumps(body)})

    for fields in (_SUMMARY_FIELDS, _SUMMARY_FIELDS[:2]):
        whole = variant(items, fields)
        if size(whole) <= room:
            return whole
    low, high = 0, len(items)
    while low < high:
        middle = (low + high + 1) // 2
        if size(variant(items[:middle], _SUMMARY_FIELDS[:2])) <= room:
            low = middle
        else:
            high = middle - 1
    return variant(items[:low], _SUMMARY_FIELDS[:2])
