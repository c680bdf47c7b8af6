"""Intent recognition for the offline engine: one user message in, one intent out.

Everything here is pure and deterministic: the same sentence and the same `today` always
give the same intent. Nothing here knows about messages or tool results; see
`models.offline` for the conversation logic and `models.replies` for the wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from tools.dates import find_date, parse_date, week_bounds
from tools.schemas import MUTATING_TOOLS, Priority, Status

__all__ = [
    "ADD_TAGS",
    "REMOVE_TAGS",
    "BatchIntent",
    "Intent",
    "TaskRef",
    "TextIntent",
    "TextKind",
    "ToolIntent",
    "UndoIntent",
    "bare_task_id",
    "loosen",
    "normalize_task_id",
    "parse_intent",
    "task_ids_in",
]

TextKind = Literal[
    "help",
    "greeting",
    "thanks",
    "goodbye",
    "acknowledge",
    "decline",
    "howto",
    "explain",
    "advice",
    "capability",
    "bulk",
    "clarify_title",
    "clarify_task",
    "clarify_change",
    "clarify_mixed",
    "clarify_dates",
    "too_many",
    "suggest_create",
    "unknown",
]


@dataclass(frozen=True)
class TaskRef:
    """How the user pointed at a task: an explicit id, some title words, or "it"."""

    task_id: str | None = None
    words: str | None = None
    pronoun: bool = False
    position: int | None = None
    """1-based place in the list just shown ("the second one")."""


@dataclass(frozen=True)
class ToolIntent:
    """A request that maps onto one tool call once `target` (if any) is resolved to an id."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    target: TaskRef | None = None


@dataclass(frozen=True)
class TextIntent:
    """A message answered in words only; `topic` says what it was about (a tool, a term)."""

    kind: TextKind
    topic: str = ""


@dataclass(frozen=True)
class BatchIntent:
    """Several tool requests in one message ("mark 2 and 3 done", "add milk, eggs and bread").

    Parts name their task by id, by title words (looked up together first), or need none.
    """

    intents: tuple[ToolIntent, ...]


@dataclass(frozen=True)
class UndoIntent:
    """Undo the last change made in this conversation ("undo that")."""


Intent = ToolIntent | TextIntent | BatchIntent | UndoIntent

MAX_BATCH = 10
"""Most tasks one message may create or change; more gets an honest answer instead."""

_FLAGS = re.IGNORECASE

# --- task references ----------------------------------------------------------------------

_TASK_ID = re.compile(r"(?<![\w#])(?:task[\s#-]*|#)0*(\d{1,9})\b", _FLAGS)
_BARE_ID = re.compile(
    r"^(?:(?:i\s+mean|i\s+meant|it'?s|the\s+one\s+is|use|pick|that'?s)\s+)?"
    r"(?:task[\s#-]*|#)?0*(\d{1,9})(?:\s+please)?$",
    _FLAGS,
)
_PRONOUN = re.compile(
    r"^(?:it|that|this|that\s+one|this\s+one|that\s+task|this\s+task|the\s+task|"
    r"the\s+(?:last|latest|previous|same|new)\s+(?:one|task)|the\s+one\s+(?:i|you)\s+just\s+\w+)$",
    _FLAGS,
)
_GENERIC_REF = re.compile(
    r"^(?:(?:a|any|some|the|my|your|new)\s+)?(?:tasks?|things?|stuff|items?|to-?dos?|"
    r"anything|something|entries|reminders?)$",
    _FLAGS,
)
_BULK_REF = re.compile(
    r"^(?:all|every|everything|each|both)\b|\b(?:all|old|older|stale|completed|done|finished|"
    r"overdue)\s+(?:my\s+)?(?:tasks|ones|items|to-?dos)\b",
    _FLAGS,
)
_REF_LEAD = re.compile(
    r"^(?:(?:the|my|our|a|an|that|this)\s+)*(?:(?:task|to-?do|item|reminder)\s+"
    r"(?:about|called|named|titled|for|to|on)?\s*)?(?:the\s+)?",
    _FLAGS,
)
_REF_TAIL = re.compile(
    r"(?:\s+(?:task|to-?do|item|reminder|one|entry))?(?:\s+(?:from|off|on)\s+(?:my|the)\s+"
    r"(?:list|tasks|to-?do\s+list|to-?dos))?$",
    _FLAGS,
)


def normalize_task_id(number: str | int) -> str:
    """Return the canonical id for a task number: 3 -> "TASK-0003"."""
    return f"TASK-{int(number):04d}"


def task_ids_in(text: str) -> list[str]:
    """Return the distinct task ids mentioned in `text` ("TASK-0003", "task 3", "#3")."""
    ids: list[str] = []
    for match in _TASK_ID.finditer(text):
        task_id = normalize_task_id(match.group(1))
        if task_id not in ids:
            ids.append(task_id)
    return ids


def bare_task_id(text: str) -> str | None:
    """Return the id when the whole message only names a task ("TASK-0003", "#3", "I mean 3")."""
    match = _BARE_ID.match(_clean(text))
    return normalize_task_id(match.group(1)) if match else None


def loosen(words: str) -> str:
    """Trim plural and other endings so a title search also finds "groceries" for "grocery".

    Each word is cut to a prefix of itself, so everything the original words matched still
    matches; words shorter than four letters after trimming are left alone.
    """
    trimmed = []
    for word in words.split():
        for ending in ("ies", "ing", "es", "ed", "y", "s"):
            stem = word[: -len(ending)]
            if word.lower().endswith(ending) and len(stem) >= 4 and not word.lower().endswith("ss"):
                word = stem
                break
        trimmed.append(word)
    return " ".join(trimmed)


_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}
_POSITION = re.compile(
    r"^(?:the\s+)?(?:(?P<word>first|second|third|fourth|fifth)|(?P<n>[1-9])(?:st|nd|rd|th))\s+"
    r"(?:one|task|item|entry)(?:\s+(?:on|in|from|of)\s+(?:the|my|that|this)\s+list)?$",
    _FLAGS,
)


def _ref(text: str) -> TaskRef | None:
    """Turn the words naming a task into a reference, or None if nothing is named."""
    cleaned = _clean(text)
    unquoted = _strip_quotes(cleaned)
    cleaned = (
        unquoted
        if unquoted != cleaned
        else _REF_REASON.sub("", _TRAILING_FILLER.sub("", cleaned)).strip(" ,;")
    )
    ids = task_ids_in(cleaned)
    if ids:
        return TaskRef(task_id=ids[0])
    if _PRONOUN.match(cleaned):
        return TaskRef(pronoun=True)
    position = _POSITION.match(cleaned)
    if position:
        word = position["word"]
        return TaskRef(position=_ORDINALS[word.lower()] if word else int(position["n"]))
    words = _REF_TAIL.sub("", _REF_LEAD.sub("", cleaned, count=1), count=1).strip(" ,.:;'\"")
    return TaskRef(words=words) if words else None


# "delete the laundry task, it's done anyway": the clause after the comma gives a reason.
_REF_REASON = re.compile(
    r"\s*[,;\u2013\u2014]\s*(?:it'?s|it\s+is|that'?s|they'?re|since|because|as|i\s+(?:already|"
    r"don'?t|no\s+longer)|no\s+longer|not\s+needed)\b.*$",
    _FLAGS,
)


def _is_generic(ref: TaskRef | None, raw: str) -> bool:
    return ref is None or bool(_GENERIC_REF.match(_clean(raw)))


# --- small text helpers -------------------------------------------------------------------


def _clean(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").split()).strip(" .!,;")


def _strip_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] in "\"'\u201c" and text[-1] in "\"'\u201d":
        return text[1:-1].strip()
    return text


def _cut(text: str, span: tuple[int, int]) -> str:
    return " ".join((text[: span[0]] + " " + text[span[1] :]).split())


def _cut_all(text: str, pattern: re.Pattern[str]) -> str:
    return " ".join(pattern.sub(" ", text).split())


def _tidy(text: str) -> str:
    """Drop connector words left dangling at either end after pieces were cut out."""
    dangling = r"(?:to|for|by|on|at|until|till|due|and|with|as|the|a|an|of|that|is|it's|its)"
    previous = None
    while previous != text:
        previous = text
        text = re.sub(rf"\s+{dangling}$", "", text, flags=_FLAGS).strip(" ,;:-\u2013\u2014.")
        text = re.sub(r"^[,;:\-\u2013\u2014]\s*", "", text).strip()
    return text


# --- fields shared by create and update ---------------------------------------------------

_PRIORITY_WORDS: list[tuple[re.Pattern[str], Priority]] = [
    (
        re.compile(
            r"\b(?:not\s+(?:urgent|important)|no\s+rush|low[\s-]?prio(?:rity)?|low[\s-]pri|"
            r"whenever(?:\s+i\s+(?:can|get\s+(?:a\s+)?(?:chance|time)))?|someday|eventually|"
            r"when\s+i\s+get\s+(?:a\s+)?(?:chance|time))\b",
            _FLAGS,
        ),
        "low",
    ),
    (
        re.compile(
            r"\b(?:urgent(?:ly)?(?:[\s-]prio(?:rity)?)?|asap|critical|top[\s-]prio(?:rity)?|"
            r"highest[\s-]priority|emergency)\b",
            _FLAGS,
        ),
        "urgent",
    ),
    (re.compile(r"\b(?:high[\s-]?prio(?:rity)?|high[\s-]pri|important)\b", _FLAGS), "high"),
    (
        re.compile(r"\b(?:normal|medium|regular|default)[\s-]?prio(?:rity)?\b", _FLAGS),
        "normal",
    ),
]
_PRIORITY_VALUE = re.compile(
    r"\bprio(?:rity)?\s*(?:[:=]|of|is|to)?\s*(?P<p>low|normal|medium|high|urgent)\b", _FLAGS
)
_PRIORITY_AFTER_TO = re.compile(
    r"\b(?:to|as|into)\s+(?:an?\s+)?(?P<p>urgent|high|low|normal|medium|important|critical|top)"
    r"(?:[\s-]priority)?\b",
    _FLAGS,
)
_PRIORITY_ALIASES: dict[str, Priority] = {
    "low": "low",
    "normal": "normal",
    "medium": "normal",
    "high": "high",
    "important": "high",
    "urgent": "urgent",
    "critical": "urgent",
    "top": "urgent",
}
_WITH = re.compile(r"(?:\b(?:with|as)\s+(?:an?\s+)?|\ban?\s+)$", _FLAGS)


def _extract_priority(text: str) -> tuple[Priority | None, str]:
    """Find a priority phrase; return it and the text with every priority phrase removed."""
    found: Priority | None = None
    for pattern in (_PRIORITY_VALUE, _PRIORITY_AFTER_TO):
        match = pattern.search(text)
        if match:
            found = _PRIORITY_ALIASES[match["p"].lower()]
            text = _cut(text, match.span())
            break
    for pattern, priority in _PRIORITY_WORDS:
        match = pattern.search(text)
        if match is None:
            continue
        found = found or priority
        start = match.start()
        # "with high priority" / "as urgent": the lead-in word goes with the phrase.
        lead = _WITH.search(text, 0, start)
        if lead is not None and lead.end() == start and not text[:start].lower().endswith("a "):
            start = lead.start()
        text = _cut(text, (start, match.end()))
    return found, text


_STATUS_VALUE = re.compile(
    r"\b(?:to|as|into|back\s+to)\s+(?P<s>in[\s-]progress|started|ongoing|pending|not\s+done|"
    r"not\s+started|open|to\s*do|incomplete|undone|active|not\s+complete[d]?)\b"
    r"|\b(?P<s2>in[\s-]progress)\b",
    _FLAGS,
)


def _status_from(word: str) -> Status:
    word = word.lower()
    return (
        "in_progress"
        if any(w in word for w in ("progress", "start", "ongoing", "active"))
        else "pending"
    )


_TAG_HASH = re.compile(r"(?<![\w&])#([A-Za-z][\w-]*)")
_TAG_WORDS = re.compile(
    r"\b(?:tagged|tags?|labell?ed|labels?)\s*(?:with|as|:)?\s+(?P<list>[\w-]+(?:\s*(?:,|\band\b)\s*[\w-]+)*)",
    _FLAGS,
)
_DESCRIPTION = re.compile(
    r"(?:\s*[,;\-\u2013\u2014]\s*|\s+)(?:with\s+)?(?:(?:a\s+)?notes?|description|details)\s*[:=]\s*(?P<d>.+)$",
    _FLAGS,
)
_QUOTED = re.compile(
    r"[\"\u201c](?P<q>[^\"\u201d]+)[\"\u201d]|(?:(?<=\s)|^)'(?P<s>[^']+)'(?=\s|$|[.,!?:])"
)


def _extract_tags(text: str) -> tuple[list[str], str]:
    tags = [t.lower() for t in _TAG_HASH.findall(text)]
    text = _cut_all(text, _TAG_HASH)
    match = _TAG_WORDS.search(text)
    if match:
        tags += [t.lower() for t in re.split(r"\s*(?:,|\band\b)\s*", match["list"]) if t]
        text = _cut(text, match.span())
    return list(dict.fromkeys(tags)), text


_DATE_LEAD = re.compile(r"\b(?:for|before|until|till|no\s+later\s+than|sometime)\s+$", _FLAGS)


def _extract_date(text: str, today: date) -> tuple[str | None, str]:
    found = find_date(text, today)
    if found is None:
        return None, text
    due, (start, end) = found
    # "lunch for Friday at noon": the word that introduced the date goes with it.
    lead = _DATE_LEAD.search(text, 0, start)
    if lead is not None and lead.end() == start:
        start = lead.start()
    return due.isoformat(), _cut(text, (start, end))


# --- create ----------------------------------------------------------------------------

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
    _FLAGS,
)
# "make" only creates when a task noun follows; otherwise it is an update ("make it urgent").
_MAKE_WITHOUT_TASK = re.compile(
    r"^make\s+(?!(?:me\s+)?(?:an?\s+|another\s+)?(?:new\s+)?(?:task|to-?do|reminder|note))",
    _FLAGS,
)
_LIST_SUFFIX = re.compile(
    r"\s+(?:to|on|onto|in)\s+(?:my|the)\s+(?:(?:task|to-?do|shopping|todo)\s+)?(?:list|tasks|to-?dos)$",
    _FLAGS,
)
_LEADING_ARTICLE = re.compile(r"^(?:a|an|the)\s+(?=\w)", _FLAGS)
_READ_REQUEST = re.compile(r"\b(?:my|the)\s+(?:tasks|list|to-?dos?|agenda)\b", _FLAGS)


def _several_dated(body: str, today: date) -> Intent:
    """Read "call mom tomorrow and pay rent on friday" as one task per part, each dated.

    When the parts don't each read as a task, ask rather than guess which date goes where.
    """
    parts = [p for p in re.split(r"\s*(?:[,;]\s*(?:and\s+)?|\band\s+(?:also\s+)?)\s*", body) if p]
    creates = [_parse_create("add " + part, today, split=False) for part in parts]
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


def _parse_create(text: str, today: date, split: bool = True) -> Intent | None:
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
    tags, text = _extract_tags(text)
    due, text = _extract_date(text, today)
    priority, text = _extract_priority(text)
    prefix = _CREATE_PREFIX.match(text)
    title = text[prefix.end() :] if prefix else text
    plural = prefix is not None and bool(_PLURAL_NOUN.search(prefix[0]))
    # "a task called …" / "a reminder to …" promise one task, whatever its title holds.
    single = prefix is not None and bool(_SINGULAR_NOUN.search(prefix[0]))
    raw = _tidy(_LIST_SUFFIX.sub("", _TRAILING_FILLER.sub("", title.strip(" .!"))))
    title = _title(raw)
    if quoted:
        title = (quoted["q"] or quoted["s"]).strip()
    several = [(q["q"] or q["s"]).strip() for q in _QUOTED.finditer(body)] if quoted else []
    if not title or _GENERIC_REF.match(title):
        return TextIntent("clarify_title")
    if _ID_LIST.match(title):
        return None  # "make task 5 high priority" changes task 5
    if _READ_REQUEST.search(title) and re.match(
        r"^(?:see|check|view|know|look|review|list)\b", title, _FLAGS
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
    r"\b(?:a|an|one|another)\s+(?:new\s+)?(?:task|to-?do|reminder|item|entry|note)\b(?!s)", _FLAGS
)
_PLURAL_NOUN = re.compile(
    r"\b(?:tasks|to-?dos|items|reminders|entries|things|these|following)\b", _FLAGS
)
_TRAILING_FILLER = re.compile(
    r"(?:[\s,]+(?:please|pls|plz|thanks|thank\s+you|thx|for\s+me|as\s+well|too|ok(?:ay)?))+$",
    _FLAGS,
)


def _capital(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def _title(text: str) -> str:
    """Tidy what is left of a title once dates, priorities and tags were cut out."""
    text = re.sub(r"\(\s*\)|\[\s*\]", " ", text)
    return _LEADING_ARTICLE.sub("", _tidy(_TRAILING_FILLER.sub("", _tidy(" ".join(text.split())))))


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
    found = list(dict.fromkeys(t for t in titles if t and not _GENERIC_REF.match(t)))
    return found or [_title(title)]


# --- complete / delete --------------------------------------------------------------------

_COMPLETE = [
    re.compile(
        r"^(?:mark|set|flag|move)\s+(?P<ref>.+?)(?<!\bnot)(?<!\bstatus)(?<!\bto)(?<!\bas)\s+(?:as\s+|to\s+)?(?:done|complete|completed|finished)$",
        _FLAGS,
    ),
    re.compile(r"^(?:check|tick|cross)\s+off\s+(?P<ref>.+)$", _FLAGS),
    re.compile(r"^(?:check|tick|cross)\s+(?P<ref>.+?)\s+off$", _FLAGS),
    re.compile(r"^(?:complete|finish|close|finalize|finalise|wrap\s+up)\s+(?P<ref>.+)$", _FLAGS),
    re.compile(
        r"^(?:i(?:'ve|\s+have)?\s+|just\s+)(?:just\s+|already\s+|finally\s+)?"
        r"(?:finished|completed|wrapped\s+up|done\s+with)\s+(?P<ref>.+)$",
        _FLAGS,
    ),
    # Without a subject, "completed tasks" is a listing request, so plurals are left alone.
    re.compile(
        r"^(?:finished|completed|done\s+with)\s+(?P<ref>(?!.*\b(?:tasks|to-?dos|items)\b).+)$",
        _FLAGS,
    ),
    re.compile(
        r"^(?:i'?m|i\s+am)\s+(?:all\s+|now\s+)?(?:done|finished)\s+with\s+(?P<ref>.+)$", _FLAGS
    ),
    re.compile(r"^done\s*[:\-]?\s+(?P<ref>.+)$", _FLAGS),
    re.compile(
        r"^(?P<ref>.+?)\s+(?:is|are)\s+(?:now\s+|all\s+|both\s+)?(?:done|finished|complete|completed)$",
        _FLAGS,
    ),
]
_DELETE = re.compile(
    r"^(?:delete|remove|drop|trash|erase|discard|scrap|get\s+rid\s+of|cancel|kill|clear|purge)\s+"
    r"(?P<ref>.+)$",
    _FLAGS,
)


_ID_ITEM = r"(?:tasks?[\s#-]*|#)?0*\d{1,9}"
_ID_LIST = re.compile(
    rf"^(?:(?:both|the|numbers?|ids?)\s+)*(?:tasks?\s+)?{_ID_ITEM}"
    rf"(?:\s*(?:,\s*and|,|&|\+|\band\b|\bplus\b|\bas\s+well\s+as\b)\s*{_ID_ITEM})*"
    r"(?:\s+(?:too|as\s+well|both|please))?$",
    _FLAGS,
)
_ID_NUMBER = re.compile(r"\d{1,9}")
_JOINED = re.compile(r"(?:,|&|\+|\band\b|\bplus\b|\bas\s+well\s+as\b)", _FLAGS)


def _listed_ids(raw: str) -> list[str]:
    """Ids when `raw` only lists task numbers ("TASK-0002 and TASK-0003", "4, 5 and 6", "3")."""
    cleaned = _clean(raw)
    if not _ID_LIST.match(cleaned):
        return []
    return list(dict.fromkeys(normalize_task_id(n) for n in _ID_NUMBER.findall(cleaned)))


def _targeted(tool: str, raw: str, args: dict[str, Any] | None = None) -> Intent:
    """Build a tool intent aimed at the task(s) named by `raw`, or say why it can't be."""
    ordered = dict(sorted((args or {}).items()))
    ids = _listed_ids(raw)
    if len(ids) > MAX_BATCH:
        return TextIntent("too_many", str(len(ids)))
    if len(ids) > 1:
        return BatchIntent(tuple(ToolIntent(tool, ordered, TaskRef(task_id=i)) for i in ids))
    if ids:
        return ToolIntent(tool, ordered, TaskRef(task_id=ids[0]))
    if _BULK_REF.search(raw):
        return TextIntent("bulk", tool)
    if task_ids_in(raw) and _JOINED.search(raw):
        # "TASK-0002 and the report": acting on the id alone would be a silent partial.
        return TextIntent("clarify_mixed", tool)
    titles = _SEVERAL_TITLES.split(_clean(raw))
    several = 1 < len(titles) <= MAX_BATCH and not {ADD_TAGS, REMOVE_TAGS} & set(ordered)
    if several and all(_DETERMINER.match(t) for t in titles):
        # "the laundry and the dishes": each part names its own task, looked up one by one.
        refs = [_ref(t) for t in titles]
        if all(r is not None and r.words for r in refs):
            return BatchIntent(tuple(ToolIntent(tool, ordered, r) for r in refs if r))
    ref = _ref(raw)
    if _is_generic(ref, raw):
        return TextIntent("capability", tool)
    return ToolIntent(tool, ordered, ref)


_SEVERAL_TITLES = re.compile(
    r"\s*,\s*(?:and\s+)?(?=(?:the|my)\s)|\s+and\s+(?=(?:the|my)\s)", _FLAGS
)
_DETERMINER = re.compile(r"^(?:the|my)\s+\w", _FLAGS)


def _parse_complete(text: str, today: date) -> Intent | None:
    for pattern in _COMPLETE:
        match = pattern.match(text)
        if match:
            return _targeted("complete_task", match["ref"])
    return None


def _parse_delete(text: str, today: date) -> Intent | None:
    match = _DELETE.match(text)
    return _targeted("delete_task", match["ref"]) if match else None


# --- update -------------------------------------------------------------------------------

_RENAME = [
    re.compile(r"^(?:rename|retitle)\s+(?P<ref>.+?)\s+(?:to|as|into)\s+(?P<value>.+)$", _FLAGS),
    re.compile(
        r"^(?:change|set|update|edit)\s+the\s+(?:title|name)\s+(?:of|for|on)\s+(?P<ref>.+?)\s+to\s+(?P<value>.+)$",
        _FLAGS,
    ),
]
_FIELD_UPDATE = [
    re.compile(
        r"^(?:change|set|update|edit|make|move|push)\s+(?:the\s+)?(?P<field>due\s+date|deadline|due|"
        r"priority|status|description|notes?|tags?)\s+(?:of|for|on)\s+(?P<ref>.+?)\s+(?:to|as|=)\s+(?P<value>.+)$",
        _FLAGS,
    ),
    re.compile(
        r"^(?:change|set|update|edit)\s+(?P<ref>.+?)(?:'s)?\s+(?P<field>due\s+date|deadline|priority|status|"
        r"description|notes?|tags?|title|name)\s+(?:to|as|=)\s+(?P<value>.+)$",
        _FLAGS,
    ),
]
_ADD_NOTE = re.compile(
    r"^add\s+(?:a\s+)?(?:note|notes|description|comment)\s+(?:to|on)\s+(?P<ref>.+?)(?:\s*:|\s+-)\s+(?P<value>.+)$",
    _FLAGS,
)
_RESCHEDULE = re.compile(
    r"^(?:move|postpone|push(?:\s+back)?|reschedule|delay|defer|bump)\s+(?P<rest>.+)$", _FLAGS
)
_START = [
    re.compile(r"^(?:start|begin)\s+(?:working\s+on\s+|on\s+)?(?P<ref>.+)$", _FLAGS),
    re.compile(
        r"^(?:i'?m|i\s+am)\s+(?:now\s+|currently\s+)?(?:working\s+on|starting(?:\s+on)?|doing|tackling)\s+(?P<ref>.+)$",
        _FLAGS,
    ),
    re.compile(
        r"^(?:i(?:'ve|\s+have)?\s+)?started(?:\s+(?:on|working\s+on))?\s+(?P<ref>.+)$", _FLAGS
    ),
]
_IS_DUE = re.compile(
    r"^(?!(?:what|which|who|anything|something|everything|nothing)\b)(?P<ref>.+?)\s+is\s+"
    r"(?:now\s+)?due\s+(?P<value>.+)$",
    _FLAGS,
)
_ITS_DUE = re.compile(
    r"^(?P<ref>it|that|this)(?:'s|\s+is)\s+(?:now\s+|actually\s+|also\s+)?due\s+(?P<value>.+)$",
    _FLAGS,
)
_TAG = re.compile(r"^(?:tag|label)\s+(?P<ref>.+?)\s+(?:with|as)\s+(?P<value>.+)$", _FLAGS)
_REOPEN = re.compile(r"^(?:reopen|re-open|uncomplete|un-complete|undo)\s+(?P<ref>.+)$", _FLAGS)
_BARE_ACTION = re.compile(
    r"^(?P<verb>complete|finish|close|delete|remove|trash)(?:\s+(?:it|that|this))?(?:\s+please)?$"
    r"|^(?P<done>mark\s+(?:it\s+|that\s+)?(?:as\s+)?(?:done|complete|completed|finished))$",
    _FLAGS,
)
_PRIORITIZE = re.compile(r"^(?P<verb>(?:de)?prioriti[sz]e)\s+(?P<ref>.+)$", _FLAGS)
_GENERIC_UPDATE = re.compile(
    r"^(?:set|make|mark|change|update|turn|flag|bump|raise|lower|put|edit)\s+(?P<rest>.+)$", _FLAGS
)
_REF_CONNECTORS = re.compile(
    r"(?:\s+(?:to|as|into|due|by|on|for|with|'s|priority|the\s+priority|the\s+due\s+date|back))+$",
    _FLAGS,
)


def _field_value(field_name: str, value: str, today: date) -> dict[str, Any] | TextIntent:
    """Interpret the new value for one named field."""
    field_name = field_name.lower()
    value = _strip_quotes(_clean(value))
    if field_name.startswith(("due", "deadline")):
        try:
            return {"due_date": parse_date(value, today).isoformat()}
        except ValueError:
            return TextIntent("clarify_change", f"date:{value}")
    if field_name == "priority":
        priority = _PRIORITY_ALIASES.get(value.lower().replace(" priority", "").strip())
        return (
            {"priority": priority}
            if priority
            else TextIntent("clarify_change", f"priority:{value}")
        )
    if field_name == "status":
        lowered = value.lower()
        if lowered in {"done", "complete", "completed", "finished"}:
            return {"status": "completed"}
        return {"status": _status_from(lowered)}
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
    for pattern in (_PRIORITY_VALUE, _PRIORITY_AFTER_TO):
        match = pattern.search(rest)
        if match:
            args["priority"] = _PRIORITY_ALIASES[match["p"].lower()]
            starts.append(match.start())
            break
    if "priority" not in args:
        for pattern, priority in _PRIORITY_WORDS:
            match = pattern.search(rest)
            if match and match.start() > 0:
                args["priority"] = priority
                starts.append(match.start())
                break
    status = _STATUS_VALUE.search(rest)
    if status:
        args["status"] = _status_from(status["s"] or status["s2"])
        starts.append(status.start())
    found = find_date(rest, today)
    if found is not None:
        args["due_date"] = found[0].isoformat()
        starts.append(found[1][0])
    return args, min(starts) if starts else len(rest)


_PRIORITY_STEP = re.compile(
    r"^(?P<verb>lower|raise|increase|decrease|reduce|bump\s+up|bump\s+down)\s+(?:the\s+)?"
    r"priority\s+(?:of|for|on)\s+(?P<ref>.+)$",
    _FLAGS,
)
_SHOULD_BE = re.compile(
    r"^(?!(?:what|which|who|it|this|that|there)\b)(?P<ref>.+?)\s+(?:should|must|needs\s+to|has\s+to|"
    r"ought\s+to)\s+be\s+(?P<value>.+)$",
    _FLAGS,
)


def _parse_update(text: str, today: date) -> Intent | None:
    match = _PRIORITY_STEP.match(text)
    if match:
        down = match["verb"].lower() in {"lower", "decrease", "reduce", "bump down"}
        return _targeted("update_task", match["ref"], {"priority": "low" if down else "high"})
    match = _SHOULD_BE.match(text)
    if match:
        wanted, _ = _values_in(" " + match["value"], today)
        if wanted:
            return _targeted("update_task", match["ref"], wanted)
    for pattern in _RENAME:
        match = pattern.match(text)
        if match:
            title = _strip_quotes(_clean(match["value"]))
            return _targeted("update_task", match["ref"], {"title": title[:200]})
    for pattern in _FIELD_UPDATE:
        match = pattern.match(text)
        if match:
            values = _field_value(match["field"], match["value"], today)
            if isinstance(values, TextIntent):
                return values
            return _targeted("update_task", match["ref"], values)
    match = _IS_DUE.match(text) or _ITS_DUE.match(text)
    if match:
        values = _field_value("due", match["value"], today)
        return (
            values
            if isinstance(values, TextIntent)
            else _targeted("update_task", match["ref"], values)
        )
    match = _TAG.match(text)
    if match:
        values = _field_value("tags", match["value"], today)
        return (
            values
            if isinstance(values, TextIntent)
            else _targeted("update_task", match["ref"], values)
        )
    for pattern in _START:
        match = pattern.match(text)
        if match:
            return _targeted("update_task", match["ref"], {"status": "in_progress"})
    match = _REOPEN.match(text)
    if match:
        return _targeted("update_task", match["ref"], {"status": "pending"})
    match = _PRIORITIZE.match(text)
    if match:
        priority = "low" if match["verb"].lower().startswith("de") else "high"
        return _targeted("update_task", match["ref"], {"priority": priority})
    match = _RESCHEDULE.match(text) or _GENERIC_UPDATE.match(text)
    if match is None:
        return None
    args, value_start = _values_in(match["rest"], today)
    ref_text = _REF_CONNECTORS.sub("", match["rest"][:value_start].strip())
    if not args:
        return TextIntent("clarify_change", "")
    if not ref_text:
        return ToolIntent("update_task", dict(sorted(args.items())), TaskRef(pronoun=True))
    return _targeted("update_task", ref_text, args)


# --- reads -----------------------------------------------------------------------------

_SUMMARY = re.compile(
    r"\b(?:summary|summari[sz]e|overview|stats|statistics|analy[sz]e|analysis|breakdown|"
    r"how\s+am\s+i\s+doing|how'?s\s+it\s+going|how\s+are\s+things|dashboard|status\s+report|"
    r"report\s+card|how\s+many\s+tasks(?:\s+do\s+i\s+have)?$|how\s+productive)\b",
    _FLAGS,
)
_GET = re.compile(
    r"^(?:show|get|open|view|display|describe|fetch|details\s+(?:of|for|on|about)|"
    r"tell\s+me\s+(?:more\s+)?about|what(?:'s|\s+is|\s+about)|look\s+up|find|info\s+(?:on|about))"
    r"\s+(?:me\s+)?(?:the\s+details\s+(?:of|for)\s+)?(?P<ref>.+)$",
    _FLAGS,
)
_LIST_SIGNAL = re.compile(
    r"\b(?:tasks|to-?dos|plate|agenda|overdue|due|pending|completed|finished|in[\s-]progress|"
    r"backlog|list|late|outstanding|open\s+items|what\s+do\s+i\s+have|what'?s\s+(?:left|next|up)|"
    r"anything|something|(?:need|have|got)\s+to\s+do)\b",
    _FLAGS,
)
_READ_VERB = re.compile(
    r"^(?:list|show|display|view|see|get|give|what|what's|whats|which|any|find|search|look|"
    r"do\s+i\s+have|are\s+there|is\s+there|tell\s+me|check|my)\b",
    _FLAGS,
)
_VAGUE_NOUN = re.compile(r"\b(?:stuff|things?|items?|work)\b", _FLAGS)
_EVERYTHING = re.compile(r"\b(?:everything|all|them|it\s+all)$", _FLAGS)
_TEXT_FILTER = re.compile(
    r"\b(?:about|matching|containing|mentioning|regarding|related\s+to|named|called|titled|"
    r"with\s+the\s+words?|that\s+mention)\s+(?P<t>.+)$",
    _FLAGS,
)
_SEARCH = re.compile(r"^(?:find|search(?:\s+for)?|look\s+(?:for|up))\s+(?P<t>.+)$", _FLAGS)
_SEARCH_NOISE = re.compile(
    r"\b(?:my|the|all|any|tasks?|to-?dos?|items?|please|me|for|with|that|which|are|is)\b", _FLAGS
)
_LIST_STATUS: list[tuple[re.Pattern[str], Status]] = [
    (
        re.compile(r"\b(?:in[\s-]progress|started|ongoing|working\s+on|active)\b", _FLAGS),
        "in_progress",
    ),
    (
        re.compile(
            r"\b(?:pending|open|outstanding|incomplete|unfinished|remaining|not\s+(?:done|started|"
            r"completed|finished)|left\s+to\s+do|left)\b",
            _FLAGS,
        ),
        "pending",
    ),
    (re.compile(r"\b(?:completed|done|finished|closed)\b", _FLAGS), "completed"),
]
_LIST_PRIORITY: list[tuple[re.Pattern[str], Priority]] = [
    (re.compile(r"\b(?:urgent|critical)\b", _FLAGS), "urgent"),
    (re.compile(r"\b(?:high[\s-]?priority|important|high[\s-]pri)\b", _FLAGS), "high"),
    (re.compile(r"\blow[\s-]?priority\b", _FLAGS), "low"),
    (re.compile(r"\b(?:normal|medium)[\s-]?priority\b", _FLAGS), "normal"),
]
_OVERDUE = re.compile(r"\b(?:overdue|late|past\s+due|behind|missed)\b", _FLAGS)
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "fourteen": 14, "thirty": 30, "a couple of": 2, "a few": 3,
}  # fmt: skip
_NUMBER = r"\d{1,3}|a\s+couple\s+of|a\s+few|" + "|".join(
    sorted((n for n in _NUMBERS if " " not in n), key=len, reverse=True)
)
_RANGE_THIS_WEEK = re.compile(r"\b(?:due\s+)?(?:this|the)\s+week\b", _FLAGS)
_RANGE_NEXT_WEEK = re.compile(r"\b(?:due\s+)?next\s+week\b", _FLAGS)
_RANGE_THIS_MONTH = re.compile(r"\b(?:due\s+)?this\s+month\b", _FLAGS)
_RANGE_SOON = re.compile(
    r"\b(?:due\s+)?(?:soon|(?:within|in|over|during)\s+(?:the\s+)?(?:next|coming)\s+week|"
    r"(?:in\s+the\s+)?coming\s+week|within\s+(?:a|one|1)\s+week|upcoming)\b",
    _FLAGS,
)
_RANGE_TODAY_TOMORROW = re.compile(
    r"\b(?:due\s+)?(?:today|tonight)\s+(?:or|and|&|\+)\s+(?:tomorrow|tmrw)\b", _FLAGS
)
_RANGE_WEEKEND = re.compile(r"\b(?:due\s+)?(?:this\s+|over\s+the\s+|the\s+)?weekend\b", _FLAGS)
_RANGE_NEXT_N = re.compile(
    rf"\b(?:due\s+)?(?:(?:in|within|over|during|for)\s+)?(?:the\s+)?(?:next|coming|upcoming|"
    rf"following)?\s*(?P<n>{_NUMBER})\s+(?P<u>days?|weeks?|months?)\b",
    _FLAGS,
)
_BEFORE = re.compile(r"\b(?:due\s+)?(?:before|by|until|no\s+later\s+than)\s+(?P<d>.+)$", _FLAGS)
_AFTER = re.compile(r"\b(?:due\s+)?(?:after|from)\s+(?P<d>.+)$", _FLAGS)
_LIMIT = re.compile(
    r"\b(?:top|first|next|last)\s+(?P<n>\d{1,3})\b(?!\s+(?:days?|weeks?|months?)\b)", _FLAGS
)
_LIST_TAG = re.compile(
    r"(?:\b(?:tagged|labell?ed)\s+(?:with\s+|as\s+)?(?:the\s+)?(?:tag\s+|label\s+)?#?(?P<a>[\w-]+)|"
    r"\b(?:with|having|under)\s+(?:the\s+|a\s+)?(?:tag|label)\s*:?\s*#?(?P<b>[\w-]+)|"
    r"(?<![\w&])#(?P<c>[A-Za-z][\w-]*))",
    _FLAGS,
)


def _date_prefix(text: str, today: date) -> tuple[date | None, int]:
    """Parse the longest leading run of words in `text` that is a date; return it and its length."""
    words = text.split()
    for count in range(min(len(words), 5), 0, -1):
        phrase = " ".join(words[:count])
        try:
            return parse_date(phrase, today), len(phrase)
        except ValueError:
            continue
    return None, 0


def _span_ahead(match: re.Match[str], today: date) -> tuple[date, date]:
    """Today up to N days, weeks or months ahead ("in the next 7 days": today to today+7)."""
    raw = " ".join(match["n"].lower().split())
    count = int(raw) if raw.isdigit() else _NUMBERS[raw]
    unit = match["u"].lower()
    if unit.startswith("month"):
        return today, parse_date(f"in {count} months", today)
    return today, today + timedelta(days=count * (7 if unit.startswith("week") else 1))


def _list_dates(text: str, today: date, args: dict[str, Any]) -> str:
    """Fill due_before / due_after from the sentence; return what is left of it.

    Weeks are whole calendar weeks, Monday to Sunday (`tools.dates.week_bounds`): on a
    Sunday "this week" still covers the Monday before; "next week" is the following one.
    """
    monday, sunday = week_bounds(today)
    ahead = _RANGE_NEXT_N.search(text)
    if ahead is not None and (ahead["n"].isdigit() or ahead["n"].lower() in _NUMBERS):
        after, before = _span_ahead(ahead, today)
        args["due_after"], args["due_before"] = after.isoformat(), before.isoformat()
        return _cut(text, ahead.span())
    ranges = [
        (_RANGE_TODAY_TOMORROW, (today, today + timedelta(days=1))),
        (_RANGE_NEXT_WEEK, (monday + timedelta(days=7), sunday + timedelta(days=7))),
        (_RANGE_THIS_WEEK, (monday, sunday)),
        (_RANGE_WEEKEND, (max(today, monday + timedelta(days=5)), sunday)),
        (_RANGE_THIS_MONTH, (today.replace(day=1), parse_date("end of month", today))),
        (_RANGE_SOON, (today, today + timedelta(days=7))),
    ]
    # "before next week" is a bound, not the range "next week".
    for pattern, key in ((_BEFORE, "due_before"), (_AFTER, "due_after")):
        match = pattern.search(text)
        if match:
            found, length = _date_prefix(match["d"], today)
            if found is not None:
                args[key] = found.isoformat()
                return _cut(text, (match.start(), match.start("d") + length))
    for pattern, (after, before) in ranges:
        match = pattern.search(text)
        if match:
            args["due_after"], args["due_before"] = after.isoformat(), before.isoformat()
            return _cut(text, match.span())
    located = find_date(text, today)
    if located is not None:
        args["due_after"] = args["due_before"] = located[0].isoformat()
        return _cut(text, located[1])
    return text


def _list_filters(text: str, today: date) -> dict[str, Any]:
    """Turn a listing request into list_tasks arguments."""
    args: dict[str, Any] = {}
    tag = _LIST_TAG.search(text)
    if tag is not None:
        args["tag"] = (tag["a"] or tag["b"] or tag["c"]).lower()
        text = _cut(text, tag.span())
    search = _SEARCH.match(text)
    explicit = _TEXT_FILTER.search(text)
    if explicit:
        text, words = text[: explicit.start()], explicit["t"]
    elif search:
        text, words = "", search["t"]
    else:
        words = ""
    if words:
        rest: dict[str, Any] = {}
        words = _list_dates(words, today, rest)
        args.update(rest)
        words = _cut_all(_strip_quotes(_clean(words)), _SEARCH_NOISE)
        if words:
            args["text"] = words
    if _OVERDUE.search(text):
        args["overdue"] = True
        text = _cut_all(text, _OVERDUE)
    for pattern, priority in _LIST_PRIORITY:
        if pattern.search(text):
            args["priority"] = priority
            text = _cut_all(text, pattern)
            break
    for pattern, status in _LIST_STATUS:
        if pattern.search(text):
            args["status"] = status
            break
    limit = _LIMIT.search(text)
    if limit:
        args["limit"] = max(1, min(200, int(limit["n"])))
        text = _cut(text, limit.span())
    if not args.get("overdue"):
        _list_dates(text, today, args)
    return dict(sorted(args.items()))


def _parse_get(text: str, today: date) -> Intent | None:
    match = _GET.match(text)
    if match is None:
        return None
    raw = match["ref"]
    ref = _ref(raw)
    if ref is not None and ref.words is not None and _ONE_TASK.search(_clean(raw)):
        # "show me the laundry task": one task named by its title, looked up.
        return ToolIntent("list_tasks", {"text": ref.words})
    if ref is None or ref.words is not None:
        return None
    if _LIST_SIGNAL.search(raw) and ref.task_id is None:
        return None
    return ToolIntent("get_task", {}, ref)


_ONE_TASK = re.compile(r"^(?:the|my|that)\s+.+\s+(?:task|to-?do|item|reminder)$", _FLAGS)
_ABOUT_ONE = re.compile(
    r"^(?:(?:what(?:'s|\s+is)\s+the\s+)?status\s+(?:of|on)\s+(?P<a>.+)|"
    r"when(?:'s|\s+is)\s+(?P<b>.+?)\s+due)$",
    _FLAGS,
)


def _parse_summary(text: str, today: date) -> Intent | None:
    return ToolIntent("task_summary") if _SUMMARY.search(text) else None


def _parse_list(text: str, today: date) -> Intent | None:
    everything = _READ_VERB.match(text) and _EVERYTHING.search(text)
    if not (_LIST_SIGNAL.search(text) or everything or _SEARCH.match(text)) and not (
        _LIST_TAG.search(text) or (_READ_VERB.match(text) and _VAGUE_NOUN.search(text))
    ):
        return None
    return ToolIntent("list_tasks", _list_filters(text, today))


# --- conversation-level kinds -----------------------------------------------------------

_HELP = re.compile(
    r"^(?:help|\?+|commands|menu|usage|what\s+can\s+(?:you|i)\s+(?:do|say|ask)(?:\s+here)?|"
    r"what\s+do\s+you\s+do|how\s+does\s+this\s+work|how\s+do\s+(?:you|i)\s+use\s+(?:you|this)|"
    r"who\s+are\s+you|what\s+are\s+you|help\s+me|examples?)$",
    _FLAGS,
)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|yo|good\s+(?:morning|afternoon|evening)|greetings|howdy)(?:\s+there)?$",
    _FLAGS,
)
_PLEASANTRY = (
    r"(?:thanks?(?:\s+(?:a\s+lot|so\s+much|you|again))*|thank\s+you(?:\s+(?:so\s+much|again))?|thx|"
    r"ty|cheers|great|cool|nice|perfect|awesome|excellent|lovely|ok(?:ay)?|got\s+it|sounds\s+good|"
    r"good|that'?s\s+(?:great|perfect|good))"
)
_THANKS = re.compile(rf"^{_PLEASANTRY}(?:[\s,!.]+{_PLEASANTRY})*$", _FLAGS)
_THANKS_WORD = (
    r"(?:thanks?(?:\s+(?:a\s+lot|so\s+much|you|again))*|thank\s+you(?:\s+so\s+much)?|thx|ty|"
    r"cheers|great|cool|nice|perfect|awesome|ok(?:ay)?|alright|good|no|nope|nah|that'?s\s+great)"
)
_GOODBYE = re.compile(
    rf"^(?:{_THANKS_WORD}[\s,!.]+)*(?:that'?s\s+(?:all|it|everything)(?:\s+for\s+now)?|"
    r"that\s+(?:is|will\s+be)\s+all|(?:i'?m|i\s+am|we'?re)\s+(?:all\s+)?(?:done|good|set|finished)"
    r"(?:\s+for\s+(?:now|today))?|nothing\s+(?:else|more)(?:\s+for\s+now)?|all\s+(?:good|done|set)|"
    r"(?:good)?bye(?:\s+bye)?|see\s+(?:you|ya)(?:\s+later)?|have\s+a\s+(?:good|nice)\s+(?:one|day|night)|"
    r"good\s*night|later|signing\s+off)(?:[\s,!.]+(?:thanks?|thank\s+you|bye))?$",
    _FLAGS,
)
_YES = re.compile(r"^(?:yes|yeah|yep|yup|y|sure|of\s+course|go\s+ahead|do\s+it)$", _FLAGS)
_INTERJECTION = re.compile(
    r"^(?:(?:oh|oops|ah|hmm+|um+|wait|actually|sorry|no|nope|nah|never\s*mind|nvm|my\s+bad|wrong|"
    r"that'?s\s+(?:wrong|not\s+(?:right|what\s+i\s+(?:meant|wanted))|a\s+mistake))\b[\s,.!]*)+",
    _FLAGS,
)
_UNDO = re.compile(
    r"^(?:undo|revert|reverse|roll\s*back|take\s+(?:that|it)\s+back|scratch\s+that|"
    r"(?:change|set|turn)\s+(?:it|that)\s+back(?:\s+(?:again|to\s+(?:how|what)\s+it\s+was))?|"
    r"cancel\s+(?:that|the)\s+last\s+(?:change|action)|put\s+it\s+back(?:\s+the\s+way\s+it\s+was)?)"
    r"(?:\s+(?:that|it|this|(?:the|my|your)\s+last(?:\s+(?:change|action|one|thing|step|edit))?|"
    r"(?:the\s+)?last\s+(?:change|action|one|thing|step|edit)|what\s+you\s+(?:just\s+)?did|"
    r"the\s+(?:change|edit)|changes?))?(?:\s+please)?$",
    _FLAGS,
)
# Typed in a hurry: the first word of a command, and a few words that carry the meaning.
_VERBS = (
    "create", "delete", "remove", "complete", "finish", "rename", "update", "change", "remind",
    "reschedule", "postpone", "search", "summary", "summarize", "prioritize",
)  # fmt: skip
_SHORT_VERBS = ("add", "show", "list", "mark", "find", "undo", "start")
_KEYWORDS = ("urgent", "overdue", "priority", "important", "tomorrow", "pending", "completed")
_COURTESY = frozenset(
    "please pls plz can could would will you u kindly ok okay so and also now then hey just "
    "go ahead i want to i'd like let's lets quickly oh oops sorry".split()
)


def _typo_distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbouring letters as one edit."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _inflections(words: tuple[str, ...]) -> frozenset[str]:
    endings = ("", "s", "d", "r", "ed", "es", "er", "ing", "ly")
    return frozenset(w + e for w in words for e in endings) | {w[:-1] + "ing" for w in words}


# Real words one letter away from a command word: never "corrected".
_NEAR_MISSES = (
    "charge", "chance", "crate", "remote", "finnish", "compete", "rewind", "remand", "upstate",
    "starch", "competed", "impotent", "spending", "reminder", "creator",
)  # fmt: skip
_REAL_WORDS = _inflections(_VERBS + _SHORT_VERBS + _KEYWORDS + _NEAR_MISSES)


def _closest(word: str, vocabulary: tuple[str, ...], limit: int) -> str | None:
    lowered = word.lower()
    if lowered in _REAL_WORDS or len(lowered) < 3:
        return None
    for known in vocabulary:
        if _typo_distance(lowered, known) <= limit and lowered[0] in known[:2]:
            return known
    return None


def _swapped(word: str) -> str | None:
    """A short command word with two letters swapped ("shwo", "lsit"); "shop" stays "shop"."""
    lowered = word.lower()
    for known in _SHORT_VERBS:
        if lowered != known and sorted(lowered) == sorted(known):
            if _typo_distance(lowered, known) == 1:
                return known
    return None


def _task_noun(word: str) -> str | None:
    """Read "tsk", "taks" or "tsaks" as task(s); the real words stay as they are."""
    lowered = word.lower()
    if lowered in {"task", "tasks"} or not 3 <= len(lowered) <= 6:
        return None
    plural = lowered.endswith("s") and len(lowered) >= 4
    noun = "tasks" if plural else "task"
    if sorted(lowered) in (sorted(noun), sorted("task")) or lowered in {"tsk", "tsks", "taskk"}:
        return noun
    return "tasks" if sorted(lowered) == sorted("tasks") else None


_WORD = re.compile(r"[A-Za-z']+|[^A-Za-z']+")


def fix_typos(text: str) -> str:
    """Correct typos in the command word ("creat", "delte") and a few key words ("tsk")."""
    pieces = _WORD.findall(text)
    seen_command = False
    for index, piece in enumerate(pieces):
        if not piece[0].isalpha() or len(piece) > 12:
            seen_command = seen_command or any(c.isalnum() for c in piece)
            continue
        fixed = _task_noun(piece)
        if fixed is None and not seen_command and piece.lower() not in _COURTESY:
            seen_command = True
            fixed = _closest(piece, _VERBS, 1 if len(piece) < 8 else 2) or _swapped(piece)
        if fixed is None and len(piece) >= 5:
            fixed = _closest(piece, _KEYWORDS, 1 if len(piece) < 8 else 2)
        if fixed is not None:
            pieces[index] = fixed
    return "".join(pieces)


_DECLINE = re.compile(
    r"^(?:no,?\s+)?(?:don'?t|do\s+not|dont|never\s*mind|nvm|not\s+yet|hold\s+on|wait|stop|"
    r"cancel\s+that|forget\s+(?:it|that)|no\s+thanks?|nope|no)\b(?!\s+(?:let\s+me\s+)?forget\b)",
    _FLAGS,
)
_HOWTO = re.compile(
    r"^(?:how\s+(?:do|can|could|would|should)\s+i|how\s+to|how\s+does\s+one)\b(?P<rest>.*)$", _FLAGS
)
_EXPLAIN = re.compile(
    r"^(?:what\s+(?:does|do|is|are)\s+(?:the\s+)?(?:word\s+|term\s+|priority\s+|status\s+)?"
    r"[\"']?(?P<a>[\w\s-]+?)[\"']?(?:\s+priority|\s+status)?\s+mean|"
    r"what(?:'s|\s+is)\s+(?:the\s+)?(?:difference\s+between|meaning\s+of)\s+(?P<b>[\w\s-]+)|"
    r"what(?:'s|\s+is|\s+are)?\s+(?:an?\s+|the\s+)?(?P<c>priorities|priority(?:\s+levels?)?|statuses|status"
    r"(?:\s+values)?|tags?))$",
    _FLAGS,
)
_ADVICE = re.compile(
    r"^(?:should\s+i|shall\s+i|do\s+you\s+think|is\s+it\s+(?:a\s+good\s+idea|wise|ok|okay|worth)|"
    r"would\s+it\s+be|what\s+should\s+i|which\s+(?:one|task)\s+should\s+i|any\s+(?:advice|tips))\b",
    _FLAGS,
)
_POLITE = re.compile(
    r"^(?:(?:please|pls|plz|kindly|ok(?:ay)?|so|and|also|now|then|alright|hey|actually|oh|wait|"
    r"oh\s+wait|hmm+|um+|oops|sorry|right|great|cool|perfect|thanks|thank\s+you|thx|cheers)"
    r"\s*[,!.]?\s+|"
    r"(?:can|could|would|will)\s+(?:you|u)\s+(?:please\s+)?|go\s+ahead\s+and\s+|"
    r"i'?d\s+like\s+(?:you\s+)?to\s+|i\s+want\s+(?:you\s+)?to\s+|let'?s\s+)",
    _FLAGS,
)
_YES_NO_READ = [
    re.compile(
        r"^(?:did|have|has)\s+i\s+(?:already\s+)?(?:finish(?:ed)?|complete[d]?|do(?:ne)?|start(?:ed)?)\s+(?P<ref>.+)$",
        _FLAGS,
    ),
    re.compile(
        r"^is\s+(?P<ref>.+?)\s+(?:done|finished|complete[d]?|overdue|started|in\s+progress|due\b.*)$",
        _FLAGS,
    ),
]
_TOPIC_WORDS: list[tuple[str, str]] = [
    ("create_task", r"\b(?:create|add|make|new|remind)"),
    ("delete_task", r"\b(?:delete|remove|drop|trash)"),
    ("complete_task", r"\b(?:complete|finish|done|check\s+off)"),
    ("update_task", r"\b(?:update|change|edit|rename|move|reschedule|set|priorit|start)"),
    ("list_tasks", r"\b(?:list|see|show|find|search|filter|view|overdue)"),
    ("task_summary", r"\b(?:summary|stats|overview|progress)"),
]


def _topic(text: str) -> str:
    for tool, pattern in _TOPIC_WORDS:
        if re.search(pattern, text, _FLAGS):
            return tool
    return ""


def _conversational(text: str) -> TextIntent | None:
    """Recognise help, small talk, refusals and questions that must never change data."""
    if not text or _HELP.match(text):
        return TextIntent("help")
    if _GREETING.match(text):
        return TextIntent("greeting")
    if _THANKS.match(text):
        return TextIntent("thanks")
    if _GOODBYE.match(text):
        return TextIntent("goodbye")
    if _YES.match(text):
        return TextIntent("acknowledge")
    if _DECLINE.match(text):
        return TextIntent("decline", _topic(text))
    howto = _HOWTO.match(text)
    if howto:
        return TextIntent("howto", _topic(howto["rest"]))
    explain = _EXPLAIN.match(text)
    if explain:
        term = explain["a"] or explain["b"] or explain["c"] or ""
        return TextIntent("explain", " ".join(term.lower().split()))
    if _ADVICE.match(text):
        return TextIntent("advice", _topic(text))
    return None


def _read_instead(intent: ToolIntent) -> Intent:
    """A question that mentions a change ("did I finish the report?") only gets a look-up."""
    target = intent.target
    if target is None:
        return TextIntent("capability", intent.tool)
    if target.words is not None:
        return ToolIntent("list_tasks", {"text": target.words})
    return ToolIntent("get_task", {}, target)


def parse_intent(text: str, today: date) -> Intent:
    """Recognise what one user message asks for.

    Writes are only produced for statements and polite requests ("please add ...",
    "could you delete TASK-0002?"); other questions get a text answer or a read-only look-up.
    """
    cleaned = _clean(text)
    question = cleaned.endswith("?") or text.rstrip().endswith("?")
    cleaned = fix_typos(cleaned.rstrip("?").strip())
    if _UNDO.match(_POLITE.sub("", _INTERJECTION.sub("", cleaned), count=1)):
        return UndoIntent()
    about = _ABOUT_ONE.match(cleaned)
    named = (about["a"] or about["b"]) if about else ""
    if named and not _GENERIC_REF.match(_clean(named)) and not _LIST_SIGNAL.search(named):
        return _read_instead(ToolIntent("get_task", {}, _ref(named)))
    conversational = _conversational(cleaned)
    if conversational is not None:
        return conversational
    body, polite = cleaned, False
    while (match := _POLITE.match(body)) is not None and match.end() < len(body):
        polite = polite or bool(
            re.match(r"(?:can|could|would|will|please|pls|plz|kindly|i)", match[0], _FLAGS)
        )
        body = body[match.end() :]
    conversational = _conversational(body)
    if conversational is not None:
        return conversational
    for pattern in _YES_NO_READ:
        match = pattern.match(body)
        if match and not _GENERIC_REF.match(_clean(match["ref"])):
            return _read_instead(ToolIntent("complete_task", {}, _ref(match["ref"])))
    intent = _parse_command(body, today)
    if intent is None:
        offer = None if question or _QUESTION_WORD.match(body) else _suggestion(body, today)
        return offer or TextIntent("unknown", cleaned[:80])
    if isinstance(intent, TextIntent) and intent.kind == "clarify_title" and question:
        return TextIntent("capability", "create_task")
    if question and not polite:
        if isinstance(intent, ToolIntent) and intent.tool in MUTATING_TOOLS:
            return _read_instead(intent)
        if isinstance(intent, BatchIntent):
            return TextIntent("capability", intent.intents[0].tool)
    return intent


_QUESTION_WORD = re.compile(
    r"^(?:what|which|when|where|who|whom|whose|why|how|is|are|was|were|do|does|did|can|could|"
    r"should|will|would|shall|may|might|have|has|am)\b",
    _FLAGS,
)
_SUGGESTIBLE = re.compile(r"^[a-z][\w'-]*(?:\s+[\w'-]+){1,8}$", _FLAGS)


def _suggestion(text: str, today: date) -> TextIntent | None:
    """A bare "Book dentist appointment, low prio" reads like a task: offer to add it."""
    cleaned = text.strip(" ,.")
    create = _parse_create("add " + cleaned, today)
    if not isinstance(create, ToolIntent) or not (
        {"priority", "due_date", "tags"} & set(create.args)
    ):
        return None
    if not _SUGGESTIBLE.match(str(create.args["title"])):
        return None
    return TextIntent("suggest_create", cleaned)


ADD_TAGS = "add_tags"
REMOVE_TAGS = "remove_tags"
"""Keys of an update that adds or removes tags: the task's current tags must be read first."""

# Every item after the first needs a separator: "[\w-]+" runs can't be split two ways.
_TAG_LIST = r"#?[\w-]+(?:(?:\s*[,&]\s*|\s+)#?[\w-]+)*?"
_CLEAR_FIELD = re.compile(
    r"^(?:clear|remove|delete|drop|erase|take\s+off)\s+(?:all\s+)?(?:the\s+|its\s+)?"
    r"(?P<field>tags|labels|due\s+date|deadline|date|notes?|description)\s+(?:from|of|on|for|off)\s+"
    r"(?P<ref>.+)$|^(?:untag|unlabel)\s+(?P<untag>.+)$",
    _FLAGS,
)
_TAG_EDIT = [
    (
        re.compile(
            rf"^(?:add|put|attach|apply|stick)\s+(?:the\s+|a\s+)?(?:tags?|labels?)\s*:?\s+"
            rf"(?P<tags>{_TAG_LIST})\s+(?:to|on|onto)\s+(?P<ref>.+)$"
            rf"|^(?:add|put|attach|apply|stick)\s+(?P<hash>#[\w-]+(?:(?:\s*[,&]\s*|\s+and\s+|\s+)#[\w-]+)*)"
            rf"\s+(?:to|on|onto)\s+(?P<ref2>.+)$",
            _FLAGS,
        ),
        ADD_TAGS,
    ),
    (
        re.compile(
            rf"^(?:remove|delete|drop|take\s+off|take|strip)\s+(?:the\s+)?(?:(?:tags?|labels?)\s*:?\s+)?"
            rf"(?P<tags>#?{_TAG_LIST})(?:\s+(?:tags?|labels?))?\s+(?:from|off(?:\s+of)?)\s+(?P<ref>.+)$",
            _FLAGS,
        ),
        REMOVE_TAGS,
    ),
]


def _tag_words(raw: str) -> list[str]:
    words = re.split(r"\s*(?:,|\band\b|&|\s)\s*", raw)
    return list(dict.fromkeys(w.lstrip("#").lower() for w in words if w.lstrip("#")))


def _parse_tag_edit(text: str, today: date) -> Intent | None:
    """Add or remove single tags, or clear a field: "add tag work to task 3", "untag it"."""
    match = _CLEAR_FIELD.match(text)
    if match:
        if match["untag"]:
            return _targeted("update_task", match["untag"], {"tags": []})
        field_name = match["field"].lower()
        if field_name in {"tags", "labels"}:
            return _targeted("update_task", match["ref"], {"tags": []})
        if field_name.startswith(("due", "deadline", "date")):
            return _targeted("update_task", match["ref"], {"due_date": ""})
        return _targeted("update_task", match["ref"], {"description": ""})
    for pattern, key in _TAG_EDIT:
        match = pattern.match(text)
        if match is None:
            continue
        raw_tags = match["tags"] if match["tags"] else match.groupdict().get("hash") or ""
        ref = match["ref"] if match["ref"] else match.groupdict().get("ref2") or ""
        # "remove the report from my list" names a task, not a tag: only explicit tags count.
        explicit = "#" in raw_tags or re.search(r"\b(?:tags?|labels?)\b", match[0], _FLAGS)
        if not explicit:
            return None
        tags = _tag_words(raw_tags)
        return _targeted("update_task", ref, {key: tags}) if tags else None
    return None


# "the newsletter isn't important, make it low priority": the first clause names the task.
_SUBJECT_THEN_IT = re.compile(
    r"^(?P<subject>(?:the|my|that|this)\s+(?:(?!\b(?:it|that)\b)[^,;])+?)(?:'s|\s+(?:is|isn'?t|was|"
    r"wasn'?t|needs|doesn'?t|does\s+not|has|can)\b)[^,;]*[,;]\s*(?:(?:so|and|then|please|just)\s+)*"
    r"(?P<command>[^,;]*\b(?:it|that)\b[^,;]*)$",
    _FLAGS,
)


def _parse_command(text: str, today: date) -> Intent | None:
    match = _SUBJECT_THEN_IT.match(text)
    if match:
        command = re.sub(r"\b(?:it|that)\b", match["subject"], match["command"], count=1)
        intent = _parse_command(command, today)
        if isinstance(intent, ToolIntent) and intent.target and intent.target.words:
            return intent
    match = _ADD_NOTE.match(text)
    if match:
        return _targeted("update_task", match["ref"], {"description": match["value"].strip()})
    edit = _parse_tag_edit(text, today)
    if edit is not None:
        return edit
    match = _BARE_ACTION.match(text)
    if match:
        # "complete" / "delete" alone mean the task just talked about, if there is one.
        verb = (match["verb"] or "complete").lower()
        tool = "delete_task" if verb in {"delete", "remove", "trash"} else "complete_task"
        return ToolIntent(tool, {}, TaskRef(pronoun=True))
    for parser in (
        _parse_create,
        _parse_complete,
        _parse_delete,
        _parse_update,
        _parse_summary,
        _parse_get,
        _parse_list,
    ):
        intent = parser(text, today)
        if intent is not None:
            return intent
    return None
