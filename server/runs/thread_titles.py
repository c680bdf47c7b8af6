"""Thread titles for people, summarised from what the first turn did (no model needed).

A created task names the thread after the task ("Renew the passport"), a listing after what
was listed ("My overdue tasks"), a change after the task it changed; anything else after the
first message, cleaned of filler ("please", "can you", "hey").
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from tools.text import printable

MAX_TITLE_CHARS = 48

# Said before or after the request itself; dropped from a title, repeatedly ("hey, please…").
_LEADING = re.compile(
    r"^(?:hey|hi|hello|ok(?:ay)?|so|um+|please|pls|kindly|"
    r"(?:can|could|would|will) you(?: please)?|"
    r"i(?:'d| would) like you to|i want you to|i need you to|help me(?: to)?)\b[\s,!.:;-]*",
    re.IGNORECASE,
)
_TRAILING = re.compile(
    r"[\s,]*\b(?:please|pls|thanks|thank you|for me)\s*$",
    re.IGNORECASE,
)
_END_PUNCTUATION = " \t.,;:!?-–—…\"'"
_STATUS_WORDS = {"pending": "pending", "in_progress": "in-progress", "completed": "completed"}
_CHANGE_VERBS = {
    "complete_task": "Complete",
    "delete_task": "Delete",
    "update_task": "Update",
    "get_task": "About",
}


def cut(text: str, limit: int = MAX_TITLE_CHARS) -> str:
    """One printable line of at most `limit` characters, cut at a word, capitalised, no end dot."""
    text = " ".join(printable(text).split()).strip(_END_PUNCTUATION)
    if len(text) > limit:
        head = text[: limit + 1]
        text = head[: head.rfind(" ")] if " " in head else text[:limit]
        text = text.strip(_END_PUNCTUATION)
    return text[:1].upper() + text[1:]


def cleaned(message: str) -> str:
    """A user message without the filler words around the request."""
    text = " ".join(message.split())
    while True:
        shorter = _LEADING.sub("", text, count=1)
        if shorter == text:
            break
        text = shorter
    return _TRAILING.sub("", text)


def summarise(messages: Sequence[BaseMessage]) -> str:
    """The title of a conversation, from its first turn; "" when there is nothing to go on."""
    first = next((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), None)
    if first is None:
        return ""
    turn: list[BaseMessage] = []
    for message in messages[first + 1 :]:
        if isinstance(message, HumanMessage):
            break
        turn.append(message)
    calls = [call for m in turn if isinstance(m, AIMessage) for call in m.tool_calls]
    results = {m.tool_call_id: _json(m.text) for m in turn if isinstance(m, ToolMessage)}
    for name in ("create_task", "list_tasks", "task_summary", *_CHANGE_VERBS):
        chosen = [c for c in calls if c["name"] == name]
        if chosen:
            title = _from_calls(name, chosen, results)
            if title:
                return cut(title)
    return cut(cleaned(messages[first].text))


def _from_calls(name: str, calls: list[Any], results: dict[str, Any]) -> str:
    args: dict[str, Any] = dict(calls[0].get("args") or {})
    result = results.get(calls[0].get("id"), {})
    task = result.get("task") if isinstance(result, dict) else None
    if name == "create_task":
        title = str((task or {}).get("title") or args.get("title") or "")
        more = len(calls) - 1
        return f"{title} and {more} more" if title and more else title
    if name == "list_tasks":
        return _listing(args)
    if name == "task_summary":
        return "My task summary"
    shown = (task or {}).get("title") or args.get("task") or args.get("task_id") or ""
    return f"{_CHANGE_VERBS[name]} {shown}" if shown else ""


def _listing(args: dict[str, Any]) -> str:
    words = ["My"]
    if args.get("overdue"):
        words.append("overdue")
    if args.get("priority"):
        words.append(f"{args['priority']} priority")
    status = args.get("status")
    if status in _STATUS_WORDS:
        words.append(_STATUS_WORDS[status])
    elif len(words) == 1:
        words.append("open")
    words.append("tasks")
    if args.get("tag"):
        words.append(f"tagged {args['tag']}")
    if args.get("text"):
        words.append(f"about {args['text']}")
    return " ".join(words)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {}
