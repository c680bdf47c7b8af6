"""What an answer claims to have done, checked against the writes that really happened.

Pure functions only. A claim is a statement that a task was created, changed, completed or
deleted: first person ("I deleted the task"), passive ("has been deleted", "is now urgent"),
a sentence opening with the deed ("Deleted TASK-0002"), or a tool result typed into the
answer (`<tool_response>`). Negations, questions, plans and conditions are not claims, and
neither are task listings with statuses ("TASK-0003 Buy milk (completed)").
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AnyMessage, HumanMessage, ToolMessage

__all__ = [
    "Claim",
    "Write",
    "claims_in",
    "honest_answer",
    "turn_writes",
    "unsupported_claims",
]

Kind = Literal["create", "change", "complete", "delete", "fabricated"]

# Which successful tool result backs which kind of claim.
_BACKED_BY: dict[Kind, frozenset[str]] = {
    "create": frozenset({"create_task"}),
    "change": frozenset({"update_task", "complete_task"}),
    "complete": frozenset({"complete_task", "update_task"}),
    "delete": frozenset({"delete_task"}),
    "fabricated": frozenset(),
}
WRITE_TOOLS = frozenset({"create_task", "update_task", "complete_task", "delete_task"})

_VERB_KIND: dict[str, Kind] = {
    "created": "create",
    "added": "create",
    "changed": "change",
    "updated": "change",
    "renamed": "change",
    "rescheduled": "change",
    "set": "change",
    "moved": "change",
    "modified": "change",
    "edited": "change",
    "marked": "change",
    "reopened": "change",
    "started": "change",
    "completed": "complete",
    "finished": "complete",
    "closed": "complete",
    "done": "complete",
    "deleted": "delete",
    "removed": "delete",
    "erased": "delete",
}
_VERBS = "|".join(sorted(_VERB_KIND, key=len, reverse=True))
_ADVERBS = r"(?:(?:just|already|now|also|successfully|then|went\s+ahead\s+and)\s+)*"

_FIRST_PERSON = re.compile(
    rf"\b(?:i|we)(?:\s+have|\s+had|'ve|'d)?\s+{_ADVERBS}(?P<verb>{_VERBS})\b", re.I
)
_PASSIVE = re.compile(
    rf"\b(?:has|have|had)\s+{_ADVERBS}been\s+{_ADVERBS}(?P<verb>{_VERBS})\b"
    rf"|\b(?:was|were|got)\s+(?:(?:just|now|successfully)\s+)*"
    r"(?P<verb2>deleted|removed|renamed|rescheduled|updated|changed|marked|moved|modified)\b"
    r"(?!\s+(?:on|at|in|since|by)\s+\d)(?!\s+(?:yesterday|ago|last|earlier))",
    re.I,
)
_IS_NOW = re.compile(
    r"\b(?:is|are)\s+now\s+(?:(?:marked|set)\s+(?:as\s+|to\s+)?)?(?P<state>[\w-]+)", re.I
)
_OPENING = re.compile(
    r"^\W*(?:(?:done|ok(?:ay)?|sure|great|success|all\s+set)\W+)?(?:successfully\s+)?(?P<verb>created|added|updated|changed|renamed|rescheduled|moved"
    r"|marked|completed|deleted|removed)\s+(?:the\s+|your\s+|task\s+)?"
    r"(?:task-\w+|[A-Z][A-Z0-9]+(?:-[A-Z0-9]+)+|task\b|it\b|\")",
    re.I,
)
# "Task deleted: …", "The task was created" reads as a report of a deed, like "Deleted …".
_TASK_THEN_VERB = re.compile(
    r"^\W*(?:the\s+|your\s+)?tasks?\s+(?:\"…\"\s+)?(?:(?:has|have)\s+been\s+|was\s+|were\s+)?"
    r"(?:successfully\s+)?(?P<verb>deleted|removed|created|added|updated|renamed|rescheduled"
    r"|changed|completed|marked)\b"
    r"(?!\s+(?:on|at|in|since|by)\s+\d)(?!\s+(?:yesterday|ago|last|earlier))",
    re.I,
)
_SUCCESSFULLY = re.compile(rf"\bsuccessfully\s+(?P<verb>{_VERBS})\b", re.I)
_ID_THEN_VERB = re.compile(
    r"\b(?P<id>TASK-[A-Z0-9-]*[A-Z0-9])\s+(?:successfully\s+)?"
    r"(?P<verb>deleted|removed|created|added|updated|renamed|rescheduled)\b(?!\s*\))",
    re.I,
)
_FAKE_TOOL_OUTPUT = re.compile(
    r"<\|?\s*/?\s*(?:tool_response|tool_result|tool_output|function_results?)\b", re.I
)
_NEGATION = re.compile(
    r"\b(?:not|no|never|nothing|none|neither|nor|without|cannot|unable|failed|fail|couldn't"
    r"|didn't|wasn't|weren't|haven't|hasn't|isn't|aren't|won't|can't)\b|n't\b",
    re.I,
)
_PLAN = re.compile(
    r"\b(?:will|'ll|going\s+to|shall|should|would|could|can|may|might|let\s+me|want\s+me"
    r"|wants?\s+to|like\s+me|once|if|unless|when\s+you|after\s+you|before|to\s+be|please"
    r"|approve|approval|confirm|try|trying|tried|attempt(?:ed)?|about\s+to|ready\s+to|need)\b",
    re.I,
)
_AS_DONE = re.compile(r"(?:\s+\S+){0,3}?\s+(?:as\s+)?(?:done|complete|completed|finished)\b", re.I)
_NOT_CHANGES = {"overdue", "due", "late", "past", "pending", "open", "the", "a", "an", "your"}
_TASK_ID = re.compile(r"\b(?:TASK-[A-Z0-9]+(?:-[A-Z0-9]+)*|[A-Z][A-Z0-9]+(?:-[A-Z0-9]+)*-\d+)\b")
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+|;\s*")
_CLAUSE = re.compile(r",\s+|\s+(?:but|however|although|though|whereas)\s+", re.I)


@dataclass(frozen=True)
class Claim:
    """One thing the answer says was done: its kind, the ids it names, and the words."""

    kind: Kind
    task_ids: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Write:
    """One tool call of this turn that writes: its tool, its outcome and the task it touched."""

    tool: str
    ok: bool
    task_ids: tuple[str, ...]
    error: str = ""


def _normalise(text: str) -> str:
    return text.replace("’", "'").replace("‘", "'")


def _clause_claims(clause: str) -> list[tuple[Kind, int]]:
    """Return (kind, position) for each claim made in one clause."""
    found: list[tuple[Kind, int]] = []
    for pattern in (_FIRST_PERSON, _PASSIVE, _SUCCESSFULLY, _ID_THEN_VERB, _TASK_THEN_VERB):
        for match in pattern.finditer(clause):
            verb = (match.groupdict().get("verb") or match.groupdict().get("verb2") or "").lower()
            kind = _VERB_KIND.get(verb)
            if kind == "change" and _AS_DONE.match(clause[match.end() :]):
                kind = "complete"
            if kind is not None:
                found.append((kind, match.start()))
    for match in _IS_NOW.finditer(clause):
        state = match.group("state").lower()
        if state in _NOT_CHANGES:
            continue
        if state in {"done", "complete", "completed", "finished", "closed"}:
            found.append(("complete", match.start()))
        elif state in {"deleted", "removed", "gone"}:
            found.append(("delete", match.start()))
        else:
            found.append(("change", match.start()))
    opening = _OPENING.match(clause)
    if opening:
        kind = _VERB_KIND[opening.group("verb").lower()]
        if kind == "change" and _AS_DONE.match(clause[opening.end() :]):
            kind = "complete"
        found.append((kind, opening.start()))
    return found


def claims_in(answer: str) -> list[Claim]:
    """Return every claim of a completed action that `answer` makes."""
    text = _normalise(answer)
    claims: list[Claim] = []
    if _FAKE_TOOL_OUTPUT.search(text):
        claims.append(Claim("fabricated", tuple(_TASK_ID.findall(text)), "<tool_response>"))
    # Titles are quoted in listings and confirmations; their words are not the answer's.
    unquoted = _QUOTED.sub('"…"', text)
    for sentence in _SENTENCE.split(unquoted):
        sentence = sentence.strip()
        if not sentence or sentence.endswith("?"):
            continue
        ids = tuple(dict.fromkeys(i.upper() for i in _TASK_ID.findall(sentence)))
        for clause in _CLAUSE.split(sentence):
            if _NEGATION.search(clause):
                continue
            for kind, position in _clause_claims(clause):
                if _PLAN.search(clause[:position]):
                    continue
                claims.append(Claim(kind, ids, sentence))
    return list(dict.fromkeys(claims))


def _ids_of(payload: dict[str, Any], args: dict[str, Any]) -> tuple[str, ...]:
    ids = [
        str(payload[key]["id"]).upper()
        for key in ("task", "deleted")
        if isinstance(payload.get(key), dict) and payload[key].get("id")
    ]
    for value in args.values():
        if isinstance(value, str) and _TASK_ID.fullmatch(value.strip().upper()):
            ids.append(value.strip().upper())
    return tuple(dict.fromkeys(ids))


def turn_writes(messages: Sequence[AnyMessage]) -> list[Write]:
    """Return the write tool calls answered since the latest user message, in order."""
    start = 0
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            start = index + 1
            break
    calls: dict[str, dict[str, Any]] = {}
    writes: list[Write] = []
    for message in messages[start:]:
        for call in getattr(message, "tool_calls", None) or []:
            calls[str(call.get("id"))] = dict(call.get("args") or {})
        if not isinstance(message, ToolMessage) or message.name not in WRITE_TOOLS:
            continue
        try:
            payload = json.loads(message.text)
        except ValueError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        args = calls.get(message.tool_call_id, {})
        writes.append(
            Write(
                tool=str(message.name),
                ok=payload.get("ok") is True,
                task_ids=_ids_of(payload, args),
                error=str(payload.get("error") or "")[:200],
            )
        )
    return writes


def _backed(claim: Claim, writes: Sequence[Write]) -> bool:
    tools = _BACKED_BY[claim.kind]
    done = [w for w in writes if w.ok and w.tool in tools]
    if not done:
        return False
    if not claim.task_ids:
        return True
    touched = {task_id for write in done for task_id in write.task_ids}
    # An id the sentence names must be one a matching write touched, unless it is an id of a
    # task merely mentioned (listed) — so one named id that was written is enough.
    return any(task_id in touched for task_id in claim.task_ids)


def unsupported_claims(answer: str, writes: Sequence[Write]) -> list[Claim]:
    """Return the claims in `answer` that no successful write of this turn backs."""
    return [claim for claim in claims_in(answer) if not _backed(claim, writes)]


_KIND_WORDS: dict[Kind, str] = {
    "create": "create",
    "change": "change",
    "complete": "complete",
    "delete": "delete",
    "fabricated": "change",
}
_DONE_WORDS = {
    "create_task": "created",
    "update_task": "updated",
    "complete_task": "completed",
    "delete_task": "deleted",
}


def honest_answer(claims: Sequence[Claim], writes: Sequence[Write]) -> str:
    """Say plainly what was not done and why, and what this turn really changed, if anything."""
    failed = [w for w in writes if not w.ok]
    done = [w for w in writes if w.ok]
    if failed:
        error = failed[-1].error.rstrip(".") or "it failed"
        why = f"the {failed[-1].tool} tool said: {error}"
    elif writes:
        why = "no tool call did what the answer claimed"
    else:
        why = "no tool was called to do it in this turn"
    if not done:
        return f"I didn't change anything: {why}."
    kinds = " or ".join(sorted({_KIND_WORDS[c.kind] for c in claims}))
    did = "; ".join(
        f"{_DONE_WORDS.get(w.tool, w.tool)} {', '.join(w.task_ids) or 'a task'}" for w in done
    )
    return f"I only {did}. I didn't {kinds} anything else: {why}."
