"""The one redactor: secrets and system-prompt echoes out of answers, streams, logs, audit, traces.

It knows every configured secret (each `SecretStr` setting and each key of
`TASKAGENT_API_KEYS`), the shapes of common keys (`sk-…`, `tak_…`, `ghp_…`, `lsv2_…`,
`Bearer …`) and the system prompt, of which any verbatim fragment of at least 40 characters
or 8 consecutive words (case, whitespace and edge punctuation ignored) is an echo. Text is
checked whole (`Redactor.text`, `Redactor.value`) or as a stream (`Redactor.stream`), which
holds back a short tail so a secret split across chunks is still caught.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, SecretStr

from graph.prompts import system_prompt
from graph.settings import Settings

REDACTED = "[redacted]"
# Shorter configured values would redact ordinary words; such secrets are too weak to matter.
MIN_SECRET_CHARS = 6
MIN_ECHO_CHARS = 40
MIN_ECHO_WORDS = 8
# A stream never holds back more than this, whatever is configured: memory and latency stay
# bounded, at worst a fragment shorter than an echo window reaches the client.
MAX_HOLD_CHARS = 2048

# Key shapes (OpenAI, ours, GitHub, LangSmith, Slack, AWS) and bearer credentials; the group
# is the part replaced, so "Bearer " itself stays readable.
KEY_SHAPES = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{8,}|tak_[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{8,}"
    r"|github_pat_[A-Za-z0-9_]{8,}|lsv2_[A-Za-z0-9_]{8,}|xox[abprs]-[A-Za-z0-9-]{8,}"
    r"|AKIA[0-9A-Z]{16})"
    r"|\b(?i:bearer)\s+([A-Za-z0-9._~+/=-]{8,})"
)
# Field names whose values are secrets whatever they hold; "max_tokens" and "input_tokens"
# are not among them.
SECRET_FIELDS = re.compile(
    r"^(pass(word)?|secret|api[_-]?key|authorization|credentials?|(access|refresh|auth)[_-]?token)$"
    r"|(_|^)(api[_-]?key|secret|password|token)$",
    re.I,
)
_BEARER = re.compile(r"\b(?i:bearer)\s*")
_LAST_WORD = re.compile(r"\S+\Z")
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
_EDGE_PUNCTUATION = re.compile(r"^\W+|\W+$")
# Placeholders that are not secrets (an OpenAI-compatible server without keys).
_NOT_SECRETS = frozenset({"not-needed"})


def configured_secrets(settings: Settings) -> list[str]:
    """Return every configured secret value: each SecretStr setting and each API key."""
    secrets: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secrets.append(value.get_secret_value())
    if settings.api_keys is not None:
        for entry in settings.api_keys.get_secret_value().split(","):
            secrets.append(entry.split(":", 1)[0].strip())
    usable = (s for s in dict.fromkeys(secrets) if s not in _NOT_SECRETS)
    return [s for s in usable if len(s) >= MIN_SECRET_CHARS]


def _squash(text: str) -> tuple[str, list[int]]:
    """Lower-case `text` with whitespace runs collapsed, and each kept char's original index.

    A leading run is kept as one space too: a stream's held tail often starts with one, and
    an echo window may begin there.
    """
    chars: list[str] = []
    index: list[int] = []
    in_space = False
    for position, char in enumerate(text):
        if char.isspace():
            if in_space:
                continue
            in_space = True
            chars.append(" ")
        else:
            in_space = False
            chars.append(char.lower())
        index.append(position)
    return "".join(chars), index


def _word_spans(text: str) -> list[tuple[str, int, int]]:
    """Return (normalized word, start, end) for each word of `text`."""
    spans: list[tuple[str, int, int]] = []
    for match in _WORD.finditer(text):
        word = _EDGE_PUNCTUATION.sub("", match.group(0).lower())
        if word:
            spans.append((word, match.start(), match.end()))
    return spans


def _merge(text: str, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join overlapping ranges, then trim the spaces and punctuation at their edges."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    trimmed: list[tuple[int, int]] = []
    for start, end in merged:
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        if start < end:
            trimmed.append((start, end))
    return trimmed


def _render(text: str, ranges: Sequence[tuple[int, int]]) -> str:
    pieces: list[str] = []
    cursor = 0
    for start, end in ranges:
        pieces.append(text[cursor:start])
        pieces.append(REDACTED)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


@dataclass(frozen=True)
class _PromptIndex:
    """The system prompt cut into the fragments an echo is recognised by."""

    squashed: str
    grams: frozenset[str]
    # Every 40-character window of the prompt contains one of these whole (they are cut at
    # every 20th character), so text containing none of them cannot hold an echo window.
    blocks: tuple[str, ...]
    word_grams: frozenset[tuple[str, ...]]
    # Every run of fewer than 8 consecutive prompt words, alone and followed by each beginning
    # of the next word: what a stream may be in the middle of.
    word_runs: frozenset[tuple[str, ...]]
    word_run_starts: frozenset[tuple[str, ...]]

    @classmethod
    def of(cls, prompt: str) -> _PromptIndex | None:
        squashed, _ = _squash(prompt)
        words = [word for word, _, _ in _word_spans(prompt)]
        if len(squashed) < MIN_ECHO_CHARS and len(words) < MIN_ECHO_WORDS:
            return None
        half = MIN_ECHO_CHARS // 2
        return cls(
            squashed=squashed,
            grams=frozenset(
                squashed[i : i + MIN_ECHO_CHARS] for i in range(len(squashed) - MIN_ECHO_CHARS + 1)
            ),
            blocks=tuple(squashed[i : i + half] for i in range(0, len(squashed) - half + 1, half)),
            word_grams=frozenset(
                tuple(words[i : i + MIN_ECHO_WORDS]) for i in range(len(words) - MIN_ECHO_WORDS + 1)
            ),
            word_runs=frozenset(
                tuple(words[i : i + n])
                for n in range(1, MIN_ECHO_WORDS)
                for i in range(len(words) - n + 1)
            ),
            word_run_starts=frozenset(
                (*words[i : i + n], words[i + n][:k])
                for n in range(1, MIN_ECHO_WORDS)
                for i in range(len(words) - n)
                for k in range(1, len(words[i + n]) + 1)
            ),
        )

    def echoes(self, text: str) -> list[tuple[int, int]]:
        """Character ranges of `text` that repeat a long verbatim fragment of the prompt."""
        ranges: list[tuple[int, int]] = []
        quick = _WHITESPACE.sub(" ", text).lower()
        if len(quick) >= MIN_ECHO_CHARS and any(block in quick for block in self.blocks):
            squashed, index = _squash(text)
            for i in range(len(squashed) - MIN_ECHO_CHARS + 1):
                if squashed[i : i + MIN_ECHO_CHARS] in self.grams:
                    ranges.append((index[i], index[i + MIN_ECHO_CHARS - 1] + 1))
        spans = _word_spans(text)
        for i in range(len(spans) - MIN_ECHO_WORDS + 1):
            window = spans[i : i + MIN_ECHO_WORDS]
            if tuple(word for word, _, _ in window) in self.word_grams:
                ranges.append((window[0][1], window[-1][2]))
        return ranges

    def open_echo(self, text: str) -> int:
        """Where an echo window that later text could complete may start in `text`.

        The longest tail (under 40 characters, or 8 words) that is itself a piece of the
        prompt; `len(text)` when there is none.
        """
        cut = len(text)
        squashed, index = _squash(text)
        for start in range(max(0, len(squashed) - MIN_ECHO_CHARS + 1), len(squashed)):
            if squashed[start:] in self.squashed:
                cut = index[start]
                break
        spans = _word_spans(text)
        # A word touching the end may still grow: it must begin the word that comes next.
        growing = spans[-1][0] if spans and spans[-1][2] == len(text) else None
        end = len(spans) - 1 if growing is not None else len(spans)
        for start in range(max(0, end - MIN_ECHO_WORDS + 1), end):
            run = tuple(word for word, _, _ in spans[start:end])
            if (
                (*run, growing) in self.word_run_starts
                if growing is not None
                else run in self.word_runs
            ):
                cut = min(cut, spans[start][1])
                break
        return cut


class Redactor:
    """Finds and replaces configured secrets, key-shaped values and system-prompt echoes."""

    def __init__(self, secrets: Iterable[str] = (), prompt: str | Callable[[], str] = "") -> None:
        """Redact `secrets` (values under six characters are ignored) and echoes of `prompt`.

        `prompt` may be a function, called whenever text is checked, for a prompt that
        changes (it carries today's date).
        """
        literals = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._secrets = re.compile("|".join(re.escape(s) for s in literals)) if literals else None
        # A stream's tail ending in one of these may be the start of a secret.
        self._secret_starts = frozenset(s[:n] for s in literals for n in range(1, len(s)))
        self._longest_secret = len(literals[0]) if literals else 0
        self._prompt = prompt
        self._index_of = lru_cache(maxsize=4)(_PromptIndex.of)
        # State messages come back in every values event: their verdicts are remembered.
        self._cached_ranges = lru_cache(maxsize=2048)(self._find)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        """The redactor for a process: its configured secrets and today's system prompt."""
        return cls(configured_secrets(settings), lambda: system_prompt(date.today()))

    def _prompt_text(self) -> str:
        return self._prompt() if callable(self._prompt) else self._prompt

    def _find(self, text: str, prompt: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        if self._secrets is not None:
            found += [match.span() for match in self._secrets.finditer(text)]
        for match in KEY_SHAPES.finditer(text):
            found.append(match.span(match.lastindex or 0))
        index = self._index_of(prompt) if prompt else None
        if index is not None:
            found += index.echoes(text)
        return _merge(text, found) if found else []

    def ranges(self, text: str) -> list[tuple[int, int]]:
        """Return the sorted, disjoint character ranges of `text` to redact."""
        return self._ranges(text, self._prompt_text())

    def _ranges(self, text: str, prompt: str) -> list[tuple[int, int]]:
        return list(self._cached_ranges(text, prompt)) if text else []

    def text(self, text: str) -> str:
        """Return `text` with every secret and prompt echo replaced by "[redacted]"."""
        return self._text(text, self._prompt_text())

    def _text(self, text: str, prompt: str) -> str:
        ranges = self._ranges(text, prompt)
        return _render(text, ranges) if ranges else text

    def value(self, value: Any) -> Any:
        """Return a copy of a JSON-like value (or Pydantic model) with secrets redacted.

        Strings are redacted as `text` does; values of secret-named fields ("api_key",
        "authorization", "password", ...) are replaced whole.
        """
        return self._value(value, self._prompt_text())

    def _value(self, value: Any, prompt: str) -> Any:
        if isinstance(value, str):
            return self._text(value, prompt)
        if isinstance(value, dict):
            return {
                key: REDACTED if SECRET_FIELDS.search(str(key)) else self._value(item, prompt)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._value(item, prompt) for item in value]
        if isinstance(value, BaseModel):
            # Messages and other models reach us before serialisation.
            return self._value(value.model_dump(), prompt)
        return value

    def stream(self) -> StreamRedactor:
        """Return a redactor for one stream of text chunks (one message's tokens)."""
        return StreamRedactor(self)

    def safe_cut(self, text: str) -> int:
        """Return how much of `text` can be released: no later chunk can make it a match.

        Held back: a tail that begins a configured secret, the last word while it may still
        grow (a key), and a tail that is a piece of the system prompt (an echo window may
        still be forming). `StreamRedactor` also keeps "Bearer" with what follows it.
        """
        cut = len(text)
        for n in range(min(len(text), self._longest_secret - 1), 0, -1):
            if text[-n:] in self._secret_starts:
                cut = len(text) - n
                break
        last_word = _LAST_WORD.search(text)
        if last_word:
            cut = min(cut, last_word.start())
        index = self._index_of(prompt) if (prompt := self._prompt_text()) else None
        if index is not None:
            cut = min(cut, index.open_echo(text))
        return cut


class StreamRedactor:
    """Redacts a text stream chunk by chunk, holding back a tail that may still be a secret."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = ""

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the text that can be sent now (maybe empty)."""
        self._held += chunk
        return self._release(final=False)

    def flush(self) -> str:
        """The stream ended: return everything still held, redacted."""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        text = self._held
        if not text:
            return ""
        ranges = self._redactor.ranges(text)
        cut = len(text) if final else self._redactor.safe_cut(text)
        if not final:
            cut = _hold_whole(text, ranges, cut)
        if len(text) - cut > MAX_HOLD_CHARS:
            cut = len(text) - MAX_HOLD_CHARS
            cut = next((end for start, end in ranges if start < cut < end), cut)
        self._held = text[cut:]
        return _render(text[:cut], [r for r in ranges if r[1] <= cut])


def _hold_whole(text: str, ranges: list[tuple[int, int]], cut: int) -> int:
    """Move `cut` back until no match, and nothing a later match may need, is split by it."""
    while True:
        before = cut
        # A match reaching into the held tail is held whole: it may still grow.
        for start, end in ranges:
            if start < cut < end:
                cut = start
        # "Bearer" stays with its credential: without it the credential is no key shape.
        for bearer in _BEARER.finditer(text):
            if bearer.start() < cut <= bearer.end():
                cut = bearer.start()
        # So do the spaces and punctuation before the tail: a match found later may begin
        # with them (an echo window starting at a line break).
        while cut > 0 and not text[cut - 1].isalnum():
            cut -= 1
        if cut == before:
            return cut


def redact_output(text: str, *, secrets: Sequence[str], system_prompt: str) -> tuple[str, bool]:
    """Return `text` with `secrets` and long echoes of `system_prompt` replaced.

    The second value says whether anything was redacted.
    """
    cleaned = Redactor(secrets, system_prompt).text(text)
    return cleaned, cleaned != text
