"""Small text helpers shared by the intent parsers."""

from __future__ import annotations

import re

FLAGS = re.IGNORECASE


def clean(text: str) -> str:
    """Collapse whitespace, straighten apostrophes and trim end punctuation."""
    return " ".join(text.replace("\u2019", "'").split()).strip(" .!,;")


def strip_quotes(text: str) -> str:
    """Drop one pair of quotes around the whole text."""
    if len(text) >= 2 and text[0] in "\"'\u201c" and text[-1] in "\"'\u201d":
        return text[1:-1].strip()
    return text


def cut(text: str, span: tuple[int, int]) -> str:
    """Remove the characters in `span` and tidy the spaces left behind."""
    return " ".join((text[: span[0]] + " " + text[span[1] :]).split())


def cut_all(text: str, pattern: re.Pattern[str]) -> str:
    """Remove every match of `pattern` and tidy the spaces left behind."""
    return " ".join(pattern.sub(" ", text).split())


def tidy(text: str) -> str:
    """Drop connector words left dangling at either end after pieces were cut out."""
    dangling = r"(?:to|for|by|on|at|until|till|due|and|with|as|the|a|an|of|that|is|it's|its)"
    previous = None
    while previous != text:
        previous = text
        text = re.sub(rf"\s+{dangling}$", "", text, flags=FLAGS).strip(" ,;:-\u2013\u2014.")
        text = re.sub(r"^[,;:\-\u2013\u2014]\s*", "", text).strip()
    return text


TRAILING_FILLER = re.compile(
    r"(?:[\s,]+(?:please|pls|plz|thanks|thank\s+you|thx|for\s+me|as\s+well|too|ok(?:ay)?))+$",
    FLAGS,
)
