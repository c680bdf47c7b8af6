"""One user message in, one intent out: the order in which the intent families are tried."""

from __future__ import annotations

import re
from datetime import date

from models.offline.intents.complete_delete import parse_bare_action, parse_complete, parse_delete
from models.offline.intents.conversation import parse_conversational
from models.offline.intents.create import offer_to_create, parse_create
from models.offline.intents.kinds import BatchIntent, Intent, TextIntent, ToolIntent, UndoIntent
from models.offline.intents.reads import LIST_SIGNAL, parse_get, parse_list, parse_summary
from models.offline.intents.refs import GENERIC_REF, task_ref
from models.offline.intents.text import FLAGS, clean
from models.offline.intents.typos import fix_typos
from models.offline.intents.update import parse_note, parse_tag_edit, parse_update
from tools.schemas import MUTATING_TOOLS

_INTERJECTION = re.compile(
    r"^(?:(?:oh|oops|ah|hmm+|um+|wait|actually|sorry|no|nope|nah|never\s*mind|nvm|my\s+bad|wrong|"
    r"that'?s\s+(?:wrong|not\s+(?:right|what\s+i\s+(?:meant|wanted))|a\s+mistake))\b[\s,.!]*)+",
    FLAGS,
)
_UNDO = re.compile(
    r"^(?:undo|revert|reverse|roll\s*back|take\s+(?:that|it)\s+back|scratch\s+that|"
    r"(?:change|set|turn)\s+(?:it|that)\s+back(?:\s+(?:again|to\s+(?:how|what)\s+it\s+was))?|"
    r"cancel\s+(?:that|the)\s+last\s+(?:change|action)|put\s+it\s+back(?:\s+the\s+way\s+it\s+was)?)"
    r"(?:\s+(?:that|it|this|(?:the|my|your)\s+last(?:\s+(?:change|action|one|thing|step|edit))?|"
    r"(?:the\s+)?last\s+(?:change|action|one|thing|step|edit)|what\s+you\s+(?:just\s+)?did|"
    r"the\s+(?:change|edit)|changes?))?(?:\s+please)?$",
    FLAGS,
)

_POLITE = re.compile(
    r"^(?:(?:please|pls|plz|kindly|ok(?:ay)?|so|and|also|now|then|alright|hey|actually|oh|wait|"
    r"oh\s+wait|hmm+|um+|oops|sorry|right|great|cool|perfect|thanks|thank\s+you|thx|cheers)"
    r"\s*[,!.]?\s+|"
    r"(?:can|could|would|will)\s+(?:you|u)\s+(?:please\s+)?|go\s+ahead\s+and\s+|"
    r"i'?d\s+like\s+(?:you\s+)?to\s+|i\s+want\s+(?:you\s+)?to\s+|let'?s\s+)",
    FLAGS,
)
_YES_NO_READ = [
    re.compile(
        r"^(?:did|have|has)\s+i\s+(?:already\s+)?(?:finish(?:ed)?|complete[d]?|do(?:ne)?|start(?:ed)?)\s+(?P<ref>.+)$",
        FLAGS,
    ),
    re.compile(
        r"^is\s+(?P<ref>.+?)\s+(?:done|finished|complete[d]?|overdue|started|in\s+progress|due\b.*)$",
        FLAGS,
    ),
]

_ABOUT_ONE = re.compile(
    r"^(?:(?:what(?:'s|\s+is)\s+the\s+)?status\s+(?:of|on)\s+(?P<a>.+)|"
    r"when(?:'s|\s+is)\s+(?P<b>.+?)\s+due)$",
    FLAGS,
)


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
    cleaned = clean(text)
    question = cleaned.endswith("?") or text.rstrip().endswith("?")
    cleaned = fix_typos(cleaned.rstrip("?").strip())
    if _UNDO.match(_POLITE.sub("", _INTERJECTION.sub("", cleaned), count=1)):
        return UndoIntent()
    about = _ABOUT_ONE.match(cleaned)
    named = (about["a"] or about["b"]) if about else ""
    if named and not GENERIC_REF.match(clean(named)) and not LIST_SIGNAL.search(named):
        return _read_instead(ToolIntent("get_task", {}, task_ref(named)))
    conversational = parse_conversational(cleaned)
    if conversational is not None:
        return conversational
    body, polite = cleaned, False
    while (match := _POLITE.match(body)) is not None and match.end() < len(body):
        polite = polite or bool(
            re.match(r"(?:can|could|would|will|please|pls|plz|kindly|i)", match[0], FLAGS)
        )
        body = body[match.end() :]
    conversational = parse_conversational(body)
    if conversational is not None:
        return conversational
    for pattern in _YES_NO_READ:
        match = pattern.match(body)
        if match and not GENERIC_REF.match(clean(match["ref"])):
            return _read_instead(ToolIntent("complete_task", {}, task_ref(match["ref"])))
    intent = _parse_command(body, today)
    if intent is None:
        offer = None if question or _QUESTION_WORD.match(body) else offer_to_create(body, today)
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
    FLAGS,
)

# "the newsletter isn't important, make it low priority": the first clause names the task.
_SUBJECT_THEN_IT = re.compile(
    r"^(?P<subject>(?:the|my|that|this)\s+(?:(?!\b(?:it|that)\b)[^,;])+?)(?:'s|\s+(?:is|isn'?t|was|"
    r"wasn'?t|needs|doesn'?t|does\s+not|has|can)\b)[^,;]*[,;]\s*(?:(?:so|and|then|please|just)\s+)*"
    r"(?P<command>[^,;]*\b(?:it|that)\b[^,;]*)$",
    FLAGS,
)


def _parse_command(text: str, today: date) -> Intent | None:
    match = _SUBJECT_THEN_IT.match(text)
    if match:
        command = re.sub(r"\b(?:it|that)\b", match["subject"], match["command"], count=1)
        intent = _parse_command(command, today)
        if isinstance(intent, ToolIntent) and intent.target and intent.target.words:
            return intent
    for parser in (
        parse_note,
        parse_tag_edit,
        parse_bare_action,
        parse_create,
        parse_complete,
        parse_delete,
        parse_update,
        parse_summary,
        parse_get,
        parse_list,
    ):
        intent = parser(text, today)
        if intent is not None:
            return intent
    return None
