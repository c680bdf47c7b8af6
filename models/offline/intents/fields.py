"""Field values shared by create and update: priority, status, tags and due dates."""

from __future__ import annotations

import re
from datetime import date

from models.offline.intents.text import FLAGS, cut, cut_all
from tools.dates import find_date
from tools.schemas import Priority, Status

PRIORITY_WORDS: list[tuple[re.Pattern[str], Priority]] = [
    (
        re.compile(
            r"\b(?:not\s+(?:urgent|important)|no\s+rush|low[\s-]?prio(?:rity)?|low[\s-]pri|"
            r"whenever(?:\s+i\s+(?:can|get\s+(?:a\s+)?(?:chance|time)))?|someday|eventually|"
            r"when\s+i\s+get\s+(?:a\s+)?(?:chance|time))\b",
            FLAGS,
        ),
        "low",
    ),
    (
        re.compile(
            r"\b(?:urgent(?:ly)?(?:[\s-]prio(?:rity)?)?|asap|critical|top[\s-]prio(?:rity)?|"
            r"highest[\s-]priority|emergency)\b",
            FLAGS,
        ),
        "urgent",
    ),
    (re.compile(r"\b(?:high[\s-]?prio(?:rity)?|high[\s-]pri|important)\b", FLAGS), "high"),
    (
        re.compile(r"\b(?:normal|medium|regular|default)[\s-]?prio(?:rity)?\b", FLAGS),
        "normal",
    ),
]
PRIORITY_VALUE = re.compile(
    r"\bprio(?:rity)?\s*(?:[:=]|of|is|to)?\s*(?P<p>low|normal|medium|high|urgent)\b", FLAGS
)
PRIORITY_AFTER_TO = re.compile(
    r"\b(?:to|as|into)\s+(?:an?\s+)?(?P<p>urgent|high|low|normal|medium|important|critical|top)"
    r"(?:[\s-]priority)?\b",
    FLAGS,
)
PRIORITY_ALIASES: dict[str, Priority] = {
    "low": "low",
    "normal": "normal",
    "medium": "normal",
    "high": "high",
    "important": "high",
    "urgent": "urgent",
    "critical": "urgent",
    "top": "urgent",
}
_WITH = re.compile(r"(?:\b(?:with|as)\s+(?:an?\s+)?|\ban?\s+)$", FLAGS)


def extract_priority(text: str) -> tuple[Priority | None, str]:
    """Find a priority phrase; return it and the text with every priority phrase removed."""
    found: Priority | None = None
    for pattern in (PRIORITY_VALUE, PRIORITY_AFTER_TO):
        match = pattern.search(text)
        if match:
            found = PRIORITY_ALIASES[match["p"].lower()]
            text = cut(text, match.span())
            break
    for pattern, priority in PRIORITY_WORDS:
        match = pattern.search(text)
        if match is None:
            continue
        found = found or priority
        start = match.start()
        # "with high priority" / "as urgent": the lead-in word goes with the phrase.
        lead = _WITH.search(text, 0, start)
        if lead is not None and lead.end() == start and not text[:start].lower().endswith("a "):
            start = lead.start()
        text = cut(text, (start, match.end()))
    return found, text


STATUS_VALUE = re.compile(
    r"\b(?:to|as|into|back\s+to)\s+(?P<s>in[\s-]progress|started|ongoing|pending|not\s+done|"
    r"not\s+started|open|to\s*do|incomplete|undone|active|not\s+complete[d]?)\b"
    r"|\b(?P<s2>in[\s-]progress)\b",
    FLAGS,
)


def status_from(word: str) -> Status:
    """Map a status word ("started", "not done") onto a status value."""
    word = word.lower()
    return (
        "in_progress"
        if any(w in word for w in ("progress", "start", "ongoing", "active"))
        else "pending"
    )


_TAG_HASH = re.compile(r"(?<![\w&])#([A-Za-z][\w-]*)")
_TAG_WORDS = re.compile(
    r"\b(?:tagged|tags?|labell?ed|labels?)\s*(?:with|as|:)?\s+(?P<list>[\w-]+(?:\s*(?:,|\band\b)\s*[\w-]+)*)",
    FLAGS,
)


def extract_tags(text: str) -> tuple[list[str], str]:
    """Find "#work" or "tagged work and home"; return the tags and the text without them."""
    tags = [t.lower() for t in _TAG_HASH.findall(text)]
    text = cut_all(text, _TAG_HASH)
    match = _TAG_WORDS.search(text)
    if match:
        tags += [t.lower() for t in re.split(r"\s*(?:,|\band\b)\s*", match["list"]) if t]
        text = cut(text, match.span())
    return list(dict.fromkeys(tags)), text


_DATE_LEAD = re.compile(r"\b(?:for|before|until|till|no\s+later\s+than|sometime)\s+$", FLAGS)


def extract_date(text: str, today: date) -> tuple[str | None, str]:
    """Find a due date; return it (ISO) and the text without it."""
    found = find_date(text, today)
    if found is None:
        return None, text
    due, (start, end) = found
    # "lunch for Friday at noon": the word that introduced the date goes with it.
    lead = _DATE_LEAD.search(text, 0, start)
    if lead is not None and lead.end() == start:
        start = lead.start()
    return due.isoformat(), cut(text, (start, end))
