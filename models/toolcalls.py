"""Turn what models actually emit into well-formed tool calls.

Two repairs, both pure and deterministic:

* Small local models often *write* a tool call as JSON text (``{"name": "create_task",
  "arguments": {...}}``, possibly inside a ```json fence) instead of emitting a structured
  call. When the message has no structured calls and its content is only — or mainly —
  such JSON naming a known tool, it becomes a real tool call and leaves the content.
* Structured calls whose arguments were not valid JSON land in
  ``AIMessage.invalid_tool_calls``. Each gets one deterministic repair attempt; if that
  fails the call is kept (same id and name) with ``{"__invalid_arguments__": raw}`` so the
  guard can bounce it back to the model instead of silently dropping it.

Argument schemas of structured calls are *not* validated here; the guard does that.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, ToolCall
from langchain_core.messages.tool import tool_call as make_tool_call
from pydantic import BaseModel

INVALID_ARGUMENTS_KEY = "__invalid_arguments__"
"""Args key marking a call whose raw argument string could not be parsed."""

# Qwen's chat template writes calls as <tool_call>{…}</tool_call>; a closing tag may be missing.
_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|tool_call|tool_code)?[ \t]*\n?(.*?)```", re.DOTALL)
_NAME_KEYS = ("name", "tool", "tool_name", "function_name")
_ARGS_KEYS = ("arguments", "args", "parameters", "input", "tool_input")
_ENVELOPE_KEYS = frozenset({*_NAME_KEYS, *_ARGS_KEYS, "function", "type", "id"})
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_MAX_REPAIR_CHARS = 100_000


def new_tool_call_id() -> str:
    """A fresh OpenAI-style tool-call id: ``call_`` + 24 hex digits."""
    return f"call_{secrets.token_hex(12)}"


# --------------------------------------------------------------------------- JSON repair


def _strip_fence(text: str) -> str:
    stripped = text.strip()
    match = _FENCE.fullmatch(stripped)
    return match.group(1).strip() if match else stripped


def _drop_trailing_comma(out: list[str]) -> None:
    """Remove a ``,`` (and whitespace after it) at the end of `out`."""
    index = len(out) - 1
    while index >= 0 and out[index].isspace():
        index -= 1
    if index >= 0 and out[index] == ",":
        del out[index:]


def _last_significant(out: list[str]) -> str:
    for piece in reversed(out):
        stripped = piece.strip()
        if stripped:
            return stripped[-1]
    return ""


def repair_json(raw: str) -> str:
    """One deterministic clean-up pass over almost-JSON written by a model.

    Strips a code fence and — outside strings — turns single-quoted strings into
    double-quoted ones, maps Python ``True``/``False``/``None`` to JSON, quotes bare
    identifier keys, drops trailing commas, and closes brackets (and a string) left open
    by a truncated answer. Text inside double-quoted strings is never changed. The result
    may still be invalid JSON.
    """
    text = _strip_fence(raw)
    out: list[str] = []
    closers: list[str] = []
    quote = ""  # the delimiter of the string being copied, "" outside strings
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and i + 1 < len(text):
                escaped = text[i + 1]
                # \' is not a JSON escape: inside a single-quoted string it is a plain '
                out.append("'" if escaped == "'" and quote == "'" else char + escaped)
                i += 2
                continue
            if char == quote:
                out.append('"')
                quote = ""
            elif char == '"':  # a double quote inside a single-quoted string
                out.append('\\"')
            else:
                out.append(char)
            i += 1
            continue
        if char in "\"'":
            quote = char
            out.append('"')
            i += 1
            continue
        if char in "{[":
            closers.append("}" if char == "{" else "]")
        elif char in "}]":
            _drop_trailing_comma(out)
            if closers:
                closers.pop()
        elif char.isalpha() or char == "_":
            end = i
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[i:end]
            rest = text[end:].lstrip()
            if rest.startswith(":") and _last_significant(out) in "{,":
                out.append(f'"{word}"')
            else:
                out.append(_PY_LITERALS.get(word, word))
            i = end
            continue
        out.append(char)
        i += 1
    if quote:
        out.append('"')
    _drop_trailing_comma(out)
    out.extend(reversed(closers))
    return "".join(out)


def _decode_dict(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
        if isinstance(value, str):  # double-encoded: "{\"title\": ...}"
            value = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    return None


def parse_arguments(raw: str) -> dict[str, Any] | None:
    """Parse a tool call's argument string into a dict, with at most one repair pass.

    An empty string or JSON ``null`` means "no arguments" (``{}``); anything that is not
    (or cannot be repaired into) a JSON object gives None.
    """
    if not raw.strip():
        return {}
    if len(raw) > _MAX_REPAIR_CHARS:
        return None
    parsed = _decode_dict(raw)
    if parsed is None:
        parsed = _decode_dict(repair_json(raw))
    return parsed


# ------------------------------------------------------------------ calls written as text


def _as_call(obj: Any) -> tuple[str, Any] | None:
    """(name, raw arguments) when `obj` has the shape of one tool call, else None."""
    if not isinstance(obj, dict):
        return None
    function = obj.get("function")
    if isinstance(function, str):  # {"function": "create_task", "arguments": {...}}
        if any(key in obj for key in _NAME_KEYS):
            return None
        obj = {**{k: v for k, v in obj.items() if k != "function"}, "name": function}
    elif isinstance(function, dict):  # {"type": "function", "function": {"name", "arguments"}}
        if not set(obj) <= _ENVELOPE_KEYS:
            return None
        obj = function
    if not set(obj) <= _ENVELOPE_KEYS:
        return None
    names = [obj[key] for key in _NAME_KEYS if key in obj]
    if len(names) != 1 or not isinstance(names[0], str):
        return None
    args = [obj[key] for key in _ARGS_KEYS if key in obj]
    if len(args) > 1:
        return None
    return names[0].strip(), (args[0] if args else {})


def _as_calls(value: Any) -> list[tuple[str, Any]] | None:
    if isinstance(value, dict) and set(value) == {"tool_calls"}:
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    calls = [_as_call(item) for item in items]
    if any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def _coerce_args(raw_args: Any) -> dict[str, Any] | None:
    if isinstance(raw_args, dict):
        return raw_args
    if raw_args is None:
        return {}
    if isinstance(raw_args, str):
        return parse_arguments(raw_args)
    return None


def _undouble(text: str) -> str:
    """Halve doubled braces outside strings: ``{{"name": …}}`` as llama.cpp/Qwen templates write.

    A run of n braces becomes ceil(n / 2), so ``}}}}}`` (one brace too many) leaves one
    closer over, which the JSON decoder then ignores as trailing text.
    """
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            out.append(char)
            if char == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif char == quote:
                quote = ""
            i += 1
            continue
        if char in "\"'":
            quote = char
        elif char in "{}":
            run = i
            while run < len(text) and text[run] == char:
                run += 1
            out.append(char * ((run - i + 1) // 2))
            i = run
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _decode_all(text: str) -> list[Any]:
    """Every JSON value in `text`, one after another (one call per line); [] unless all parse.

    Closing braces left over after the last value (a model's miscount) are ignored.
    """
    values: list[Any] = []
    decoder = json.JSONDecoder()
    index = 0
    while index < len(text):
        if text[index].isspace() or text[index] == ",":
            index += 1
            continue
        try:
            value, index = decoder.raw_decode(text, index)
        except ValueError:
            if values and not text[index:].strip(_LEFTOVER_CHARS):
                break
            return []
        values.append(value)
    return values


def _load(text: str) -> list[Any]:
    """The JSON values `text` holds, trying it as written, undoubled, then repaired.

    Raise ValueError if none of these parse.
    """
    text = text.strip()
    variants = [text] if "{{" not in text else [text, _undouble(text)]
    for variant in variants:
        values = _decode_all(variant)
        if values:
            return values
    if len(text) > _MAX_REPAIR_CHARS:
        raise ValueError("too long to repair")
    for variant in variants:
        try:
            return [json.loads(repair_json(variant))]
        except (ValueError, RecursionError):
            continue
    raise ValueError("not JSON")


def _significant_len(text: str) -> int:
    return len("".join(text.split()))


def _json_end(text: str, start: int) -> int:
    """Where the bracketed value opening at `start` closes (string-aware), or the text's end."""
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char == '"':
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


@dataclass(frozen=True)
class _Span:
    """Where a written call sits in the text, and the calls it holds."""

    start: int
    end: int
    calls: list[tuple[str, Any]]
    tagged: bool
    fenced: bool = False


def _span_calls(candidate: str) -> list[tuple[str, Any]] | None:
    try:
        values = _load(candidate)
    except (ValueError, RecursionError):
        return None
    shapes: list[tuple[str, Any]] = []
    for value in values:
        found = _as_calls(value)
        if found is None:
            return None
        shapes.extend(found)
    return shapes


def _call_spans(text: str) -> list[_Span]:
    """Every stretch of `text` that is a call written out: tagged, fenced or bare JSON."""
    spans: list[_Span] = []

    def taken(index: int) -> bool:
        return any(span.start <= index < span.end for span in spans)

    for match in _TAG.finditer(text):
        shapes = _span_calls(match.group(1))
        if shapes:
            spans.append(_Span(match.start(), match.end(), shapes, tagged=True))
    for match in _FENCE.finditer(text):
        if taken(match.start()):
            continue
        shapes = _span_calls(match.group(1))
        if shapes:
            spans.append(_Span(match.start(), match.end(), shapes, tagged=False, fenced=True))
    index = 0
    while True:
        found = re.compile(r"[{\[]").search(text, index)
        if found is None:
            break
        start = found.start()
        if taken(start):
            index = start + 1
            continue
        end = _json_end(text, start)
        shapes = _span_calls(text[start:end])
        if shapes:
            spans.append(_Span(start, end, shapes, tagged=False))
            index = end
        else:
            index = start + 1
    return sorted(spans, key=lambda span: span.start)


_CALL_OPENING = re.compile(r'^\{+\s*"(?:name|function|tool|tool_name)"\s*:\s*"(\w+)"')


def _unreadable_call(
    text: str, allowed: Mapping[str, type[BaseModel]]
) -> tuple[list[ToolCall], str] | None:
    """A reply that is plainly one call of an allowed tool but not readable JSON, as a call.

    The guard then tells the model its arguments were not valid JSON, so it can try again,
    instead of the user being shown the broken JSON.
    """
    whole = _strip_fence(text)
    opening = _CALL_OPENING.match(whole)
    if opening is None or opening.group(1) not in allowed:
        return None
    try:
        _load(whole)
    except (ValueError, RecursionError):
        pass
    else:
        return None  # readable, but not the shape of one call: not ours to guess
    call = make_tool_call(
        name=opening.group(1), args={INVALID_ARGUMENTS_KEY: whole}, id=new_tool_call_id()
    )
    return [call], ""


def _extract_text_calls(
    text: str, allowed: Mapping[str, type[BaseModel]]
) -> tuple[list[ToolCall], str] | None:
    """Find tool calls written out in `text`; return them and the remaining text.

    Calls are taken when the text is clearly made of them: inside ``<tool_call>`` tags, or
    when the prose around them is shorter than the calls. Such a call naming an allowed
    tool becomes a real call even if its arguments do not validate — the guard answers the
    model with the error to correct, and the user never sees the JSON. Text that merely
    quotes a call, or names a tool we do not offer, is left alone.
    """
    stripped = text.strip()
    if not stripped:
        return None
    spans = _call_spans(stripped)
    if not spans:
        return _unreadable_call(stripped, allowed)
    pieces: list[str] = []
    position = 0
    for span in spans:
        pieces.append(stripped[position : span.start])
        position = span.end
    pieces.append(stripped[position:])
    rest = clean_answer("\n".join(p.strip() for p in pieces if p.strip()))
    calls_size = sum(_significant_len(stripped[s.start : s.end]) for s in spans)
    # Small models explain a call to the user ("you can use the `delete_task` function:" and a
    # fenced call) instead of making it: a tagged or fenced call is meant, however much prose
    # surrounds it. Bare JSON inside mostly prose is only quoted, and left alone.
    if not all(s.tagged or s.fenced for s in spans) and _significant_len(rest) > calls_size:
        return None
    if any(name in rest for name in allowed):
        rest = ""  # instructions for calling the tool, which has now been called
    shapes = [shape for span in spans for shape in span.calls]
    calls: list[ToolCall] = []
    for name, raw_args in shapes:
        args = _coerce_args(raw_args)
        if name not in allowed:
            return None
        if args is None:
            args = {INVALID_ARGUMENTS_KEY: raw_args if isinstance(raw_args, str) else str(raw_args)}
        calls.append(make_tool_call(name=name, args=args, id=new_tool_call_id()))
    return calls, rest


_LEFTOVER_CHARS = " \t\r\n{}[],;"
_EMPTY_TAGS = re.compile(r"<tool_call>\s*</tool_call>|</?tool_call>")
_EMPTY_FENCE = re.compile(r"```[ \t]*[A-Za-z_]*[ \t]*\n?[\s{}\[\],]*```")
_BRACE_LINE = re.compile(r"^[ \t{}\[\],;]*$", re.MULTILINE)


def clean_answer(text: str) -> str:
    """Return `text` without what a written call leaves behind.

    Removes empty or stray ``<tool_call>`` tags, empty fences and lines made only of
    braces or brackets; an answer that is only ``{ }`` becomes empty, so the model never
    finds such an answer in its history to imitate.
    """
    cleaned = _EMPTY_TAGS.sub("", text)
    cleaned = _EMPTY_FENCE.sub("", cleaned)
    cleaned = _BRACE_LINE.sub("", cleaned)
    cleaned = re.sub(r"\n{3,}", "\n\n", cleaned).strip()
    return "" if not cleaned.strip(_LEFTOVER_CHARS) else cleaned


def _text_of(content: str | list[str | dict[str, Any]]) -> str | None:
    """Plain text of `content`, or None when it holds anything but text."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        else:
            return None
    return "".join(parts)


# ------------------------------------------------------------------------------- public


def normalize_tool_calls(message: AIMessage, allowed: Mapping[str, type[BaseModel]]) -> AIMessage:
    """Return a new AIMessage whose tool calls are all in `message.tool_calls`.

    `allowed` maps tool names to their Pydantic argument models (``TOOL_ARGS``). The
    result keeps the id, name, metadata and usage of `message`. Structured calls are
    kept as they are; invalid ones are repaired or marked with ``__invalid_arguments__``;
    a call written as JSON text (when there are no structured calls) is lifted out of
    the content. ``invalid_tool_calls`` of the result is always empty.
    """
    content: str | list[str | dict[str, Any]] = message.content
    tool_calls: list[ToolCall] = [
        make_tool_call(
            name=tc["name"], args=dict(tc["args"]), id=tc.get("id") or new_tool_call_id()
        )
        for tc in message.tool_calls
    ]
    for bad in message.invalid_tool_calls:
        raw = bad.get("args") or ""
        args = parse_arguments(raw)
        tool_calls.append(
            make_tool_call(
                name=bad.get("name") or "",
                args=args if args is not None else {INVALID_ARGUMENTS_KEY: raw},
                id=bad.get("id") or new_tool_call_id(),
            )
        )
    if not tool_calls:
        text = _text_of(content)
        found = _extract_text_calls(text, allowed) if text is not None else None
        if found is not None:
            tool_calls, content = found
    text = _text_of(content)
    if text and clean_answer(text) != text.strip():
        content = clean_answer(text)
    return AIMessage(
        content=content,
        additional_kwargs=dict(message.additional_kwargs),
        response_metadata=dict(message.response_metadata),
        name=message.name,
        id=message.id,
        tool_calls=tool_calls,
        invalid_tool_calls=[],
        usage_metadata=message.usage_metadata,
    )
