"""Text that reaches a terminal or another user: no control characters, no bidi overrides.

C0/C1 control characters drive terminals (ESC]0; sets the window title, OSC 8 makes hidden
links, ESC[2J clears the screen) and the Unicode bidirectional overrides reorder what a
reader sees, so neither is accepted in stored text nor shown on output.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# Tab, newline and carriage return are ordinary text on input; everything else below 0x20,
# DEL, the C1 range and the bidi embeddings, overrides and isolates is not.
_UNSAFE_INPUT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# On output a carriage return is unsafe too: it lets text overwrite what precedes it.
_UNSAFE_OUTPUT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def check_plain_text(value: str) -> str:
    """Return `value` unchanged, or raise ValueError if it holds control or bidi characters."""
    found = _UNSAFE_INPUT.search(value)
    if found is not None:
        raise ValueError(
            f"must not contain control or bidirectional-override characters"
            f" (found U+{ord(found.group()):04X})"
        )
    return value


def printable(value: str) -> str:
    """Return `value` without control characters (newline and tab kept) or bidi overrides."""
    return _UNSAFE_OUTPUT.sub("", value)


PlainText = Annotated[str, AfterValidator(check_plain_text)]
"""A `str` field that refuses control and bidi-override characters (422 at the API)."""
