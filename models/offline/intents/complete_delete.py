"""Complete and delete: "mark the laundry done", "delete task 3", or a bare "delete it"."""

from __future__ import annotations

import re
from datetime import date

from models.offline.intents.kinds import Intent, TaskRef, ToolIntent
from models.offline.intents.refs import targeted
from models.offline.intents.text import FLAGS

_COMPLETE = [
    re.compile(
        r"^(?:mark|set|flag|move)\s+(?P<ref>.+?)(?<!\bnot)(?<!\bstatus)(?<!\bto)(?<!\bas)\s+(?:as\s+|to\s+)?(?:done|complete|completed|finished)$",
        FLAGS,
    ),
    re.compile(r"^(?:check|tick|cross)\s+off\s+(?P<ref>.+)$", FLAGS),
    re.compile(r"^(?:check|tick|cross)\s+(?P<ref>.+?)\s+off$", FLAGS),
    re.compile(r"^(?:complete|finish|close|finalize|finalise|wrap\s+up)\s+(?P<ref>.+)$", FLAGS),
    re.compile(
        r"^(?:i(?:'ve|\s+have)?\s+|just\s+)(?:just\s+|already\s+|finally\s+)?"
        r"(?:finished|completed|wrapped\s+up|done\s+with)\s+(?P<ref>.+)$",
        FLAGS,
    ),
    # Without a subject, "completed tasks" is a listing request, so plurals are left alone.
    re.compile(
        r"^(?:finished|completed|done\s+with)\s+(?P<ref>(?!.*\b(?:tasks|to-?dos|items)\b).+)$",
        FLAGS,
    ),
    re.compile(
        r"^(?:i'?m|i\s+am)\s+(?:all\s+|now\s+)?(?:done|finished)\s+with\s+(?P<ref>.+)$", FLAGS
    ),
    re.compile(r"^done\s*[:\-]?\s+(?P<ref>.+)$", FLAGS),
    re.compile(
        r"^(?P<ref>.+?)\s+(?:is|are)\s+(?:now\s+|all\s+|both\s+)?(?:done|finished|complete|completed)$",
        FLAGS,
    ),
]
_DELETE = re.compile(
    r"^(?:delete|remove|drop|trash|erase|discard|scrap|get\s+rid\s+of|cancel|kill|clear|purge)\s+"
    r"(?P<ref>.+)$",
    FLAGS,
)

_BARE_ACTION = re.compile(
    r"^(?P<verb>complete|finish|close|delete|remove|trash)(?:\s+(?:it|that|this))?(?:\s+please)?$"
    r"|^(?P<done>mark\s+(?:it\s+|that\s+)?(?:as\s+)?(?:done|complete|completed|finished))$",
    FLAGS,
)


def parse_complete(text: str, today: date) -> Intent | None:
    """Read a completion: "mark the laundry done", "finished task 3"."""
    for pattern in _COMPLETE:
        match = pattern.match(text)
        if match:
            return targeted("complete_task", match["ref"])
    return None


def parse_delete(text: str, today: date) -> Intent | None:
    """Read a deletion: "delete task 3", "get rid of the dentist task"."""
    match = _DELETE.match(text)
    return targeted("delete_task", match["ref"]) if match else None


def parse_bare_action(text: str, today: date) -> Intent | None:
    """Read "complete" / "delete it" alone as acting on the task just talked about."""
    match = _BARE_ACTION.match(text)
    if match is None:
        return None
    verb = (match["verb"] or "complete").lower()
    tool = "delete_task" if verb in {"delete", "remove", "trash"} else "complete_task"
    return ToolIntent(tool, {}, TaskRef(pronoun=True))
