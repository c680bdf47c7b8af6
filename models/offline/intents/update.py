"""Update: rename, reschedule, reprioritise, start, reopen, add a note, add or remove tags."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from models.offline.intents.fields import (
    PRIORITY_AFTER_TO,
    PRIORITY_ALIASES,
    PRIORITY_VALUE,
    PRIORITY_WORDS,
    STATUS_VALUE,
    status_from,
)
from models.offline.intents.kinds import (
    ADD_TAGS,
    REMOVE_TAGS,
    Intent,
    TaskRef,
    TextIntent,
    ToolIntent,
)
from models.offline.intents.refs import targeted
from models.offline.intents.text import FLAGS, clean, strip_quotes
from tools.dates import find_date, parse_date

_RENAME = [
    re.compile(r"^(?:rename|retitle)\s+(?P<ref>.+?)\s+(?:to|as|into)\s+(?P<value>.+)$", FLAGS),
    re.compile(
        r"^(?:change|set|update|edit)\s+the\s+(?:title|name)\s+(?:of|for|on)\s+(?P<ref>.+?)\s+to\s+(?P<value>.+)$",
        FLAGS,
    ),
]
_FIELD_UPDATE = [
    re.compile(
        r"^(?:change|set|update|edit|make|move|push)\s+(?:the\s+)?(?P<field>due\s+date|deadline|due|"
        r"priority|status|description|notes?|tags?)\s+(?:of|for|on)\s+(?P<ref>.+?)\s+(?:to|as|=)\s+(?P<value>.+)$",
        FLAGS,
    ),
    re.compile(
        r"^(?:change|set|update|edit)\s+(?P<ref>.+?)(?:'s)?\s+(?P<field>due\s+date|deadline|priority|status|"
        r"description|notes?|tags?|title|name)\s+(?:to|as|=)\s+(?P<value>.+)$",
        FLAGS,
    ),
]
_ADD_NOTE = re.compile(
    r"^add\s+(?:a\s+)?(?:note|notes|description|comment)\s+(?:to|on)\s+(?P<ref>.+?)(?:\s*:|\s+-)\s+(?P<value>.+)$",
    FLAGS,
)
_RESCHEDULE = re.compile(
    r"^(?:move|postpone|push(?:\s+back)?|reschedule|delay|defer|bump)\s+(?P<rest>.+)$", FLAGS
)
_START = [
    re.compile(r"^(?:start|begin)\s+(?:working\s+on\s+|on\s+)?(?P<ref>.+)$", FLAGS),
    re.compile(
        r"^(?:i'?m|i\s+am)\s+(?:now\s+|currently\s+)?(?:working\s+on|starting(?:\s+on)?|doing|tackling)\s+(?P<ref>.+)$",
        FLAGS,
    ),
    re.compile(
        r"^(?:i(?:'ve|\s+have)?\s+)?started(?:\s+(?:on|working\s+on))?\s+(?P<ref>.+)$", FLAGS
    ),
]
_IS_DUE = re.compile(
    r"^(?!(?:what|which|who|anything|something|everything|nothing)\b)(?P<ref>.+?)\s+is\s+"
    r"(?:now\s+)?due\s+(?P<value>.+)$",
    FLAGS,
)
_ITS_DUE = re.compile(
    r"^(?P<ref>it|that|this)(?:'s|\s+is)\s+(?:now\s+|actually\s+|also\s+)?due\s+(?P<value>.+)$",
    FLAGS,
)
_TAG = re.compile(r"^(?:tag|label)\s+(?P<ref>.+?)\s+(?:with|as)\s+(?P<value>.+)$", FLAGS)
_REOPEN = re.compile(r"^(?:reopen|re-open|uncomplete|un-complete|undo)\s+(?P<ref>.+)$", FLAGS)

_PRIORITIZE = re.compile(r"^(?P<verb>(?:de)?prioriti[sz]e)\s+(?P<ref>.+)$", FLAGS)
_GENERIC_UPDATE = re.compile(
    r"^(?:set|make|mark|change|update|turn|flag|bump|raise|lower|put|edit)\s+(?P<rest>.+)$", FLAGS
)
_REF_CONNECTORS = re.compile(
    r"(?:\s+(?:to|as|into|due|by|on|for|with|'s|priority|the\s+priority|the\s+due\s+date|back))+$",
    FLAGS,
)


def _field_value(field_name: str, value: str, today: date) -> dict[str, Any] | TextIntent:
    """Interpret the new value for one named field."""
    field_name = field_name.lower()
    value = strip_quotes(clean(value))
    if field_name.startswith(("due", "deadline")):
        try:
            return {"due_date": parse_date(value, today).isoformat()}
        except ValueError:
            return TextIntent("clarify_change", f"date:{value}")
    if field_name == "priority":
        priority = PRIORITY_ALIASES.get(value.lower().replace(" priority", "").strip())
        return (
            {"priority": priority}
            if priority
            else TextIntent("clarify_change", f"priority:{value}")
        )
    if field_name == "status":
        lowered = value.lower()
        if lowered in {"done", "complete", "completed", "finished"}:
            return {"status": "completed"}
        return {"status": status_from(lowered)}
    if field_name.startswith("tag"):
        return {
            "tags": [t.lower().lstrip("#") for t in re.split(r"\s*(?:,|\band\b)\s*", value) if t]
        }
    if field_name in {"title", "name"}:
        return {"title": value[:200]}
    return {"description": value}


def _values_in(rest: str, today: date) -> tuple[dict[str, Any], int]:
    """Find new priority / status / due date in `rest`; return them and where they start."""
    args: dict[str, Any] = {}
    starts: list[int] = []
    for pattern in (PRIORITY_VALUE, PRIORITY_AFTER_TO):
        match = pattern.search(rest)
        if match:
            args["priority"] = PRIORITY_ALIASES[match["p"].lower()]
            starts.append(match.start())
            break
    if "priority" not in args:
        for pattern, priority in PRIORITY_WORDS:
            match = pattern.search(rest)
            if match and match.start() > 0:
                args["priority"] = priority
                starts.append(match.start())
                break
    status = STATUS_VALUE.search(rest)
    if status:
        args["status"] = status_from(status["s"] or status["s2"])
        starts.append(status.start())
    found = find_date(rest, today)
    if found is not None:
        args["due_date"] = found[0].isoformat()
        starts.append(found[1][0])
    return args, min(starts) if starts else len(rest)


_PRIORITY_STEP = re.compile(
    r"^(?P<verb>lower|raise|increase|decrease|reduce|bump\s+up|bump\s+down)\s+(?:the\s+)?"
    r"priority\s+(?:of|for|on)\s+(?P<ref>.+)$",
    FLAGS,
)
_SHOULD_BE = re.compile(
    r"^(?!(?:what|which|who|it|this|that|there)\b)(?P<ref>.+?)\s+(?:should|must|needs\s+to|has\s+to|"
    r"ought\s+to)\s+be\s+(?P<value>.+)$",
    FLAGS,
)


def parse_note(text: str, today: date) -> Intent | None:
    """Read "add a note to the report: ask Sam first" as a new description."""
    match = _ADD_NOTE.match(text)
    if match is None:
        return None
    return targeted("update_task", match["ref"], {"description": match["value"].strip()})


def parse_update(text: str, today: date) -> Intent | None:
    """Read a change to a task's fields: rename, reschedule, priority, status."""
    match = _PRIORITY_STEP.match(text)
    if match:
        down = match["verb"].lower() in {"lower", "decrease", "reduce", "bump down"}
        return targeted("update_task", match["ref"], {"priority": "low" if down else "high"})
    match = _SHOULD_BE.match(text)
    if match:
        wanted, _ = _values_in(" " + match["value"], today)
        if wanted:
            return targeted("update_task", match["ref"], wanted)
    for pattern in _RENAME:
        match = pattern.match(text)
        if match:
            title = strip_quotes(clean(match["value"]))
            return targeted("update_task", match["ref"], {"title": title[:200]})
    for pattern in _FIELD_UPDATE:
        match = pattern.match(text)
        if match:
            values = _field_value(match["field"], match["value"], today)
            if isinstance(values, TextIntent):
                return values
            return targeted("update_task", match["ref"], values)
    match = _IS_DUE.match(text) or _ITS_DUE.match(text)
    if match:
        values = _field_value("due", match["value"], today)
        return (
            values
            if isinstance(values, TextIntent)
            else targeted("update_task", match["ref"], values)
        )
    match = _TAG.match(text)
    if match:
        values = _field_value("tags", match["value"], today)
        return (
            values
            if isinstance(values, TextIntent)
            else targeted("update_task", match["ref"], values)
        )
    for pattern in _START:
        match = pattern.match(text)
        if match:
            return targeted("update_task", match["ref"], {"status": "in_progress"})
    match = _REOPEN.match(text)
    if match:
        return targeted("update_task", match["ref"], {"status": "pending"})
    match = _PRIORITIZE.match(text)
    if match:
        priority = "low" if match["verb"].lower().startswith("de") else "high"
        return targeted("update_task", match["ref"], {"priority": priority})
    match = _RESCHEDULE.match(text) or _GENERIC_UPDATE.match(text)
    if match is None:
        return None
    args, value_start = _values_in(match["rest"], today)
    ref_text = _REF_CONNECTORS.sub("", match["rest"][:value_start].strip())
    if not args:
        return TextIntent("clarify_change", "")
    if not ref_text:
        return ToolIntent("update_task", dict(sorted(args.items())), TaskRef(pronoun=True))
    return targeted("update_task", ref_text, args)


# Every item after the first needs a separator: "[\w-]+" runs can't be split two ways.
_TAG_LIST = r"#?[\w-]+(?:(?:\s*[,&]\s*|\s+)#?[\w-]+)*?"
_CLEAR_FIELD = re.compile(
    r"^(?:clear|remove|delete|drop|erase|take\s+off)\s+(?:all\s+)?(?:the\s+|its\s+)?"
    r"(?P<field>tags|labels|due\s+date|deadline|date|notes?|description)\s+(?:from|of|on|for|off)\s+"
    r"(?P<ref>.+)$|^(?:untag|unlabel)\s+(?P<untag>.+)$",
    FLAGS,
)
_TAG_EDIT = [
    (
        re.compile(
            rf"^(?:add|put|attach|apply|stick)\s+(?:the\s+|a\s+)?(?:tags?|labels?)\s*:?\s+"
            rf"(?P<tags>{_TAG_LIST})\s+(?:to|on|onto)\s+(?P<ref>.+)$"
            rf"|^(?:add|put|attach|apply|stick)\s+(?P<hash>#[\w-]+(?:(?:\s*[,&]\s*|\s+and\s+|\s+)#[\w-]+)*)"
            rf"\s+(?:to|on|onto)\s+(?P<ref2>.+)$",
            FLAGS,
        ),
        ADD_TAGS,
    ),
    (
        re.compile(
            rf"^(?:remove|delete|drop|take\s+off|take|strip)\s+(?:the\s+)?(?:(?:tags?|labels?)\s*:?\s+)?"
            rf"(?P<tags>#?{_TAG_LIST})(?:\s+(?:tags?|labels?))?\s+(?:from|off(?:\s+of)?)\s+(?P<ref>.+)$",
            FLAGS,
        ),
        REMOVE_TAGS,
    ),
]


def _tag_words(raw: str) -> list[str]:
    words = re.split(r"\s*(?:,|\band\b|&|\s)\s*", raw)
    return list(dict.fromkeys(w.lstrip("#").lower() for w in words if w.lstrip("#")))


def parse_tag_edit(text: str, today: date) -> Intent | None:
    """Add or remove single tags, or clear a field: "add tag work to task 3", "untag it"."""
    match = _CLEAR_FIELD.match(text)
    if match:
        if match["untag"]:
            return targeted("update_task", match["untag"], {"tags": []})
        field_name = match["field"].lower()
        if field_name in {"tags", "labels"}:
            return targeted("update_task", match["ref"], {"tags": []})
        if field_name.startswith(("due", "deadline", "date")):
            return targeted("update_task", match["ref"], {"due_date": ""})
        return targeted("update_task", match["ref"], {"description": ""})
    for pattern, key in _TAG_EDIT:
        match = pattern.match(text)
        if match is None:
            continue
        raw_tags = match["tags"] if match["tags"] else match.groupdict().get("hash") or ""
        ref = match["ref"] if match["ref"] else match.groupdict().get("ref2") or ""
        # "remove the report from my list" names a task, not a tag: only explicit tags count.
        explicit = "#" in raw_tags or re.search(r"\b(?:tags?|labels?)\b", match[0], FLAGS)
        if not explicit:
            return None
        tags = _tag_words(raw_tags)
        return targeted("update_task", ref, {key: tags}) if tags else None
    return None
