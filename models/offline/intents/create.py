"""Create: "add a high-priority task to call mom tomorrow", several at once, or an offer to add."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from models.offline.intents.fields import extract_date, extract_priority, extract_tags
from models.offline.intents.kinds import MAX_BATCH, BatchIntent, Intent, TextIntent, ToolIntent
from models.offline.intents.refs import GENERIC_REF, ID_LIST
from models.offline.intents.text import FLAGS, TRAILING_FILLER, tidy
from tools.dates import find_date

_DESCRIPTION = re.compile(
    r"(?:\s*[,;\-\u2013\u2014]\s*|\s+)(?:with\s+)?(?:(?:a\s+)?notes?|description|details)\s*[:=]\s*(?P<d>.+)$",
    FLAGS,
)
_QUOTED = re.compile(
    r"[\"\u201c](?P<q>[^\"\u201d]+)[\"\u201d]|(?:(?<=\s)|^)'(?P<s>[^']+)'(?=\s|$|[.,!?:])"
)

_CREATE_PREFIX = re.compile(
    r"^(?:"
    r"(?:create|add|new|log|record|track|schedule|set\s+up|jot\s+down|note\s+down|put|make)"
    r"(?:\s*:\s*|\s+)(?:me\s+)?(?:(?:\d{1,2}|the\s+following|a\s+few|a\s+couple\s+of|these|"
    r"those|some|several|two|three|four|five|another|one|an|a|the)\b(?:\s+|\s*:\s*))?(?:new\s+)?"
    r"(?:(?:task|to-?do|reminder|item|entry|note)s?\b\s*(?:called|named|titled|to\s+(?=\w)|"
    r"for\s+me\s+to\s+|for\s+me\s+|for|about|"
    r"regarding|that\s+says|saying|:|-|\u2013|\u2014)?\s*(?:the\s+)?)?"
    r"|(?:new\s+)?(?:task|to-?do)\s*(?::|[\-\u2013\u2014](?=\s))\s*"
    r"|remind\s+me\s+(?:to|about|of|that)?\s*"
    r"|(?:don'?t|do\s+not)\s+(?:let\s+me\s+)?forget\s+(?:to|about)?\s*"
    r"|i\s+(?:need|have|must|gotta|got|'ve\s+got|have\s+got)\s+(?:to\s+)?"
    r")",
    FLAGS,
)
# "make" only creates when a task noun follows; otherwise it is an update ("make it urgent").
_MAKE_WITHOUT_TASK = re.compile(
    r"^make\s+(?!(?:me\s+)?(?:an?\s+|another\s+)?(?:new\s+)?(?:task|to-?do|reminder|note))",
    FLAGS,
)
_LIST_SUFFIX = re.compile(
    r"\s+(?:to|on|onto|in)\s+(?:my|the)\s+(?:(?:task|to-?do|shopping|todo)\s+)?(?:list|tasks|to-?dos)$",
    FLAGS,
)
_LEADING_ARTICLE = re.compile(r"^(?:a|an|the)\s+(?=\w)", FLAGS)
_READ_REQUEST = re.compile(r"\b(?:my|the)\s+(?:tasks|list|to-?dos?|agenda)\b", FLAGS)


def _several_dated(body: str, today: date) -> Intent:
    """Read "call mom tomorrow and pay rent on friday" as one task per part, each dated.

    When the parts don't each read as a task, ask rather than guess which date goes where.
    """
    parts = [p for p in re.split(r"\s*(?:[,;]\s*(?:and\s+)?|\band\s+(?:also\s+)?)\s*", body) if p]
    creates = [parse_create("add " + part, today, split=False) for part in parts]
    single = [
        c
        for c in creates
        if isinstance(c, ToolIntent)
        and "due_date" in c.args
        and find_date(str(c.args["title"]), today) is None
    ]
    if len(parts) < 2 or len(single) != len(parts) or len(parts) > MAX_BATCH:
        return TextIntent("clarify_dates")
    return BatchIntent(tuple(single))


def parse_create(text: str, today: date, split: bool = True) -> Intent | None:
    """Read a request to add one or more tasks, or None if it is not one."""
    if _MAKE_WITHOUT_TASK.match(text) or not _CREATE_PREFIX.match(text):
        return None
    lead = _CREATE_PREFIX.match(text)
    body = text[lead.end() :] if lead else text
    args: dict[str, Any] = {}
    quoted = _QUOTED.search(text)
    description = _DESCRIPTION.search(text)
    if description:
        args["description"] = description["d"].strip()
        text = text[: description.start()]
    tags, text = extract_tags(text)
    due, text = extract_date(text, today)
    priority, text = extract_priority(text)
    prefix = _CREATE_PREFIX.match(text)
    title = text[prefix.end() :] if prefix else text
    plural = prefix is not None and bool(_PLURAL_NOUN.search(prefix[0]))
    # "a task called …" / "a reminder to …" promise one task, whatever its title holds.
    single = prefix is not None and bool(_SINGULAR_NOUN.search(prefix[0]))
    raw = tidy(_LIST_SUFFIX.sub("", TRAILING_FILLER.sub("", title.strip(" .!"))))
    title = _title(raw)
    if quoted:
        title = (quoted["q"] or quoted["s"]).strip()
    several = [(q["q"] or q["s"]).strip() for q in _QUOTED.finditer(body)] if quoted else []
    if not title or GENERIC_REF.match(title):
        return TextIntent("clarify_title")
    if ID_LIST.match(title):
        return None  # "make task 5 high priority" changes task 5
    if _READ_REQUEST.search(title) and re.match(
        r"^(?:see|check|view|know|look|review|list)\b", title, FLAGS
    ):
        return None
    if priority:
        args["priority"] = priority
    if due:
        args["due_date"] = due
    if tags:
        args["tags"] = tags
    if split and not quoted and re.search(r"[;,]|\band\b", body) and find_date(title, today):
        return _several_dated(body, today)
    if len(several) > 1 and not single:
        # "create tasks 'renew passport' and 'book hotel'": each quote is one title.
        titles = list(dict.fromkeys(t for t in several if t))
    else:
        titles = [title] if quoted or single else _items(raw, plural)
    if len(titles) > MAX_BATCH:
        return TextIntent("too_many", str(len(titles)))
    creates = tuple(
        ToolIntent("create_task", dict(sorted((args | {"title": _capital(t)[:200]}).items())))
        for t in titles
    )
    return creates[0] if len(creates) == 1 else BatchIntent(creates)


_SINGULAR_NOUN = re.compile(
    r"\b(?:a|an|one|another)\s+(?:new\s+)?(?:task|to-?do|reminder|item|entry|note)\b(?!s)", FLAGS
)
_PLURAL_NOUN = re.compile(
    r"\b(?:tasks|to-?dos|items|reminders|entries|things|these|following)\b", FLAGS
)


def _capital(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def _title(text: str) -> str:
    """Tidy what is left of a title once dates, priorities and tags were cut out."""
    text = re.sub(r"\(\s*\)|\[\s*\]", " ", text)
    return _LEADING_ARTICLE.sub("", tidy(TRAILING_FILLER.sub("", tidy(" ".join(text.split())))))


def _items(title: str, plural: bool) -> list[str]:
    """Split "milk, eggs and bread" or "A; B" into titles; anything else stays one title.

    Semicolons and new lines always separate. After a plural noun ("tasks: call mom, pay
    rent") commas and "and" separate. Otherwise a comma list is split only when it reads as
    separate tasks: all one-word items ("milk, eggs and bread"), or three or more short
    items that each carry their own verb ("call mom, pay rent and book flights"). One-word
    items after a longer first one share its verb ("buy milk, eggs and bread", "review Q1,
    Q2 and Q3 numbers") and stay one task; so does "call mom and dad".
    """
    if re.search(r"[;\n]", title):
        parts = re.split(r"\s*[;\n]+\s*", title)
    else:
        parts = re.split(r"\s*,\s*(?:and\s+|&\s*)?", title)
        if len(parts) > 1 or plural:
            parts = parts[:-1] + re.split(r"\s+(?:and|&)\s+", parts[-1])
        sizes = [len(p.split()) for p in parts]
        nouns = len(parts) >= 2 and max(sizes) == 1
        tasks = len(parts) >= 3 and max(sizes) <= 5 and min(sizes[1:]) >= 2
        if not (plural or nouns or tasks):
            return [_title(title)]
    titles = [_title(p) for p in parts]
    found = list(dict.fromkeys(t for t in titles if t and not GENERIC_REF.match(t)))
    return found or [_title(title)]


_SUGGESTIBLE = re.compile(r"^[a-z][\w'-]*(?:\s+[\w'-]+){1,8}$", FLAGS)


def offer_to_create(text: str, today: date) -> TextIntent | None:
    """A bare "Book dentist appointment, low prio" reads like a task: offer to add it."""
    cleaned = text.strip(" ,.")
    create = parse_create("add " + cleaned, today)
    if not isinstance(create, ToolIntent) or not (
        {"priority", "due_date", "tags"} & set(create.args)
    ):
        return None
    if not _SUGGESTIBLE.match(str(create.args["title"])):
        return None
    return TextIntent("suggest_create", cleaned)
