"""Conversation: help, small talk, refusals, how-to and advice questions that never change data."""

from __future__ import annotations

import re

from models.offline.intents.kinds import TextIntent
from models.offline.intents.text import FLAGS

_HELP = re.compile(
    r"^(?:help|\?+|commands|menu|usage|what\s+can\s+(?:you|i)\s+(?:do|say|ask)(?:\s+here)?|"
    r"what\s+do\s+you\s+do|how\s+does\s+this\s+work|how\s+do\s+(?:you|i)\s+use\s+(?:you|this)|"
    r"who\s+are\s+you|what\s+are\s+you|help\s+me|examples?)$",
    FLAGS,
)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|yo|good\s+(?:morning|afternoon|evening)|greetings|howdy)(?:\s+there)?$",
    FLAGS,
)
_PLEASANTRY = (
    r"(?:thanks?(?:\s+(?:a\s+lot|so\s+much|you|again))*|thank\s+you(?:\s+(?:so\s+much|again))?|thx|"
    r"ty|cheers|great|cool|nice|perfect|awesome|excellent|lovely|ok(?:ay)?|got\s+it|sounds\s+good|"
    r"good|that'?s\s+(?:great|perfect|good))"
)
_THANKS = re.compile(rf"^{_PLEASANTRY}(?:[\s,!.]+{_PLEASANTRY})*$", FLAGS)
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
    FLAGS,
)
_YES = re.compile(r"^(?:yes|yeah|yep|yup|y|sure|of\s+course|go\s+ahead|do\s+it)$", FLAGS)

_DECLINE = re.compile(
    r"^(?:no,?\s+)?(?:don'?t|do\s+not|dont|never\s*mind|nvm|not\s+yet|hold\s+on|wait|stop|"
    r"cancel\s+that|forget\s+(?:it|that)|no\s+thanks?|nope|no)\b(?!\s+(?:let\s+me\s+)?forget\b)",
    FLAGS,
)
_HOWTO = re.compile(
    r"^(?:how\s+(?:do|can|could|would|should)\s+i|how\s+to|how\s+does\s+one)\b(?P<rest>.*)$", FLAGS
)
_EXPLAIN = re.compile(
    r"^(?:what\s+(?:does|do|is|are)\s+(?:the\s+)?(?:word\s+|term\s+|priority\s+|status\s+)?"
    r"[\"']?(?P<a>[\w\s-]+?)[\"']?(?:\s+priority|\s+status)?\s+mean|"
    r"what(?:'s|\s+is)\s+(?:the\s+)?(?:difference\s+between|meaning\s+of)\s+(?P<b>[\w\s-]+)|"
    r"what(?:'s|\s+is|\s+are)?\s+(?:an?\s+|the\s+)?(?P<c>priorities|priority(?:\s+levels?)?|statuses|status"
    r"(?:\s+values)?|tags?))$",
    FLAGS,
)
_ADVICE = re.compile(
    r"^(?:should\s+i|shall\s+i|do\s+you\s+think|is\s+it\s+(?:a\s+good\s+idea|wise|ok|okay|worth)|"
    r"would\s+it\s+be|what\s+should\s+i|which\s+(?:one|task)\s+should\s+i|any\s+(?:advice|tips))\b",
    FLAGS,
)

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
        if re.search(pattern, text, FLAGS):
            return tool
    return ""


def parse_conversational(text: str) -> TextIntent | None:
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
