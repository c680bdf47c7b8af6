"""Prompt-injection heuristics: flag suspicious user text, block clear attacks.

Pure functions, no I/O. The detector is a first line of defence, not the security boundary:
authorization is enforced in code at the tool boundary whatever the model is talked into.
So it blocks only unambiguous attacks (requests for the system prompt or secrets, "ignore
all previous instructions", forged chat-template markers, cross-user identity fields) and
merely flags softer signals, keeping ordinary task requests ("ignore the dentist task for
now", "system upgrade on friday", "remind me to print the report") untouched.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InjectionVerdict:
    """What the detector found in one message: matched pattern names, and whether to refuse."""

    flags: list[str] = field(default_factory=list)
    block: bool = False


@dataclass(frozen=True)
class _Rule:
    flag: str
    pattern: re.Pattern[str]
    block: bool


def _rule(flag: str, pattern: str, *, block: bool, case: bool = False) -> _Rule:
    flags = re.MULTILINE if case else re.IGNORECASE | re.MULTILINE
    return _Rule(flag, re.compile(pattern, flags), block)


# --- vocabulary -------------------------------------------------------------------------

_IGNORE = (
    r"(?:ignore|disregard|forget|override|overrule|bypass|abandon|discard|neglect|set\s+aside"
    r"|throw\s+out|nullify)"
)
# "Rules" nouns: ignoring these is never a correction of one's own earlier request.
_RULES = (
    r"(?:instructions|rules|directives|guidelines|guardrails|system\s+(?:prompts?|messages?)"
    r"|programming|restrictions|constraints|polic(?:y|ies)|safety\s+(?:rules|filters?|measures))"
)
# Nouns a user may well ask to ignore ("ignore the previous request"): strong only with "all".
_SOFT = r"(?:instruction|rule|requests?|messages?|inputs?|commands?|prompts?|orders?|context)"
_EARLIER = (
    r"(?:previous|prior|above|earlier|preceding|original|initial|existing|former|foregoing"
    r"|system|safety|default|developer|built-?in|pre-?existing|old)"
)
_REVEAL = (
    r"(?:reveal|print|show|repeat|output|display|give|tell|share|paste|dump|leak|recite"
    r"|expose|disclose|echo|spell\s+out|list|provide|return|send|copy|type\s+out|write\s+out"
    r"|translate|summari[sz]e|read\s+out|what(?:'s|\s+is|\s+are|\s+was|\s+were)"
    r"|go\s+(?:line\s+by\s+line|through))"
)
# Words that may sit between a reveal verb and its object ("show me the full ...").
_FILLER = (
    r"(?:(?:me|us|back|again|the|your|its|all|of|full|exact|exactly|entire|complete|whole"
    r"|first|last|original|initial|hidden|secret|internal|current|verbatim|raw|actual|real"
    r"|same|sentence|line|lines|words?|text|contents?|part|parts|beginning|start|rest|what"
    r"|every|each|configured|stored|server's|server|openai|other|users'?|user's|admin"
    r"|word\s+for\s+word|in\s+full)\s+){0,5}"
)
_QUALIFIER = (
    r"(?:full|exact|entire|complete|original|initial|hidden|secret|internal|system|current"
    r"|actual|real|first|unique|core|base|starting)"
)
_PROMPT_TARGET = (
    r"(?:system\s+(?:prompt|message|instructions?)|developer\s+(?:prompt|message)"
    rf"|{_QUALIFIER}\s+(?:prompt|instructions?)"
    rf"|(?:your|the\s+model's)\s+(?:{_QUALIFIER}\s+){{0,2}}(?:prompt|instructions|programming"
    r"|configuration|config|unique\s+id)(?!\s+(?:for|on|about|to|when|how)\b)"
    rf"|(?:your|the\s+model's)\s+(?:{_QUALIFIER}\s+){{1,2}}(?:rules|guidelines|directives)"
    r"|(?:the\s+)?(?:text|words|everything|instructions|lines)\s+"
    r"(?:above|before\s+this|prior\s+to\s+this|you\s+see\s+above)"
    r"|(?:what|everything)\s+you\s+(?:were|have\s+been)\s+(?:told|given|instructed))"
)
_SECRET = (
    r"(?:api[\s_-]?keys?|secret\s+keys?|access\s+tokens?|auth(?:entication)?\s+tokens?"
    r"|bearer\s+tokens?|private\s+keys?|env(?:ironment)?\s+(?:variables?|vars?)|\.env\b"
    r"|openai_api_key|taskagent_api_keys|x-api-key"
    r"|(?:your|server's|other\s+users'?|admin's|all\s+users'?)\s+"
    r"(?:passwords?|secrets|credentials))"
)
_TOOLS = r"(?:create_task|list_tasks|get_task|update_task|complete_task|delete_task|task_summary)"
_USERS = r"(?:users?|accounts?|tenants?)"
_OWNED = (
    r"(?:tasks?|threads?|data|todos?|to-?dos?|lists?|conversations?|items?|records?"
    r"|messages?|history)"
)
# After "as user" / "tasks of the user": words that make it ordinary English, not a name.
_NOT_A_NAME = (
    r"(?:feedback|research|experience|interface|story|stories|testing|tests?|data|base"
    r"|groups?|needs|input|interviews?|reports?|acceptance|journeys?|guide|manual|settings"
    r"|flows?|mode|level|role|type|permissions?|access|view|page|profile|session|journey"
    r"|of|for|and|who|with|in|on|to|the|an?|my|is|was|i)\b"
)
# A name in "as user X" ends the phrase: "as user victim, ..." / "as user victim and ...".
_NAME_END = (
    r"(?=\s*(?:[,.;:!?)]|$|and\b|then\b|please\b|delete|create|update|complete|mark|list"
    r"|show|add|remove|set|change|rename|get|called\b|titled\b|named\b|saying\b))"
)

# --- rules ------------------------------------------------------------------------------

_RULES_TABLE: tuple[_Rule, ...] = (
    # ignore_instructions
    _rule(
        "ignore_instructions",
        rf"\b{_IGNORE}\s+(?:all|any|every|each)\s+(?:of\s+)?(?:the\s+|your\s+|these\s+)?"
        rf"(?:{_EARLIER}\s+)?(?:\w+\s+)?{_RULES}\b",
        block=True,
    ),
    _rule(
        "ignore_instructions",
        rf"\b{_IGNORE}\s+(?:all|any|every|each)\s+(?:of\s+)?(?:the\s+|your\s+)?"
        rf"{_EARLIER}\s+(?:\w+\s+)?{_SOFT}\b",
        block=True,
    ),
    _rule(
        "ignore_instructions",
        rf"\b{_IGNORE}\s+(?:the\s+|these\s+)?{_EARLIER}\s+(?:\w+\s+)?{_RULES}\b",
        block=True,
    ),
    _rule(
        "ignore_instructions",
        rf"\b{_IGNORE}\s+(?:all\s+)?(?:of\s+)?your\s+(?:{_EARLIER}\s+)?(?:\w+\s+)?"
        rf"(?:{_RULES}|prompts?)\b",
        block=True,
    ),
    _rule(
        "ignore_instructions",
        r"\b(?:regardless\s+of|in\s+spite\s+of|despite|no\s+matter)\s+"
        rf"(?:(?:any|all|your|the)\s+)?{_EARLIER}\s+(?:\w+\s+)?(?:{_RULES}|{_SOFT})\b"
        rf"|\bregardless\s+of\s+(?:any\s+|all\s+)?your\s+(?:\w+\s+)?{_RULES}\b",
        block=True,
    ),
    _rule(
        "ignore_instructions",
        rf"\b(?:{_EARLIER})\s+(?:{_RULES}|commands|orders)\s+(?:are|is)\s+(?:now\s+)?"
        r"(?:void|null|cancell?ed|revoked|obsolete|overridden|invalid|no\s+longer\s+valid)",
        block=True,
    ),
    _rule(
        "ignore_instructions",
        r"(?:\*{2,}|#{2,}|={3,}|-{3,})\s*(?:(?:new|updated|urgent|important|revised)\s+){1,3}"
        r"(?:system\s+)?(?:instructions?|directives?|rules)\b",
        block=True,
    ),
    _rule(
        "ignore_instructions",
        r"\b(?:NEW|UPDATED)\s+(?:IMPORTANT\s+)?(?:SYSTEM\s+)?INSTRUCTIONS\b",
        block=True,
        case=True,
    ),
    _rule(
        "ignore_instructions",
        rf"\b{_IGNORE}\b(?:\s+\w+){{0,4}}\s+(?:{_RULES}|{_SOFT})\b",
        block=False,
    ),
    _rule(
        "ignore_instructions",
        r"\b(?:new|updated|revised)\s+(?:instructions|directives?)\b|\bfrom\s+now\s+on\b"
        r"|\byour\s+new\s+(?:task|job|role|goal|purpose)\s+is\b|\binstead\s+of\s+(?:that|this)\b"
        r"|\*{2,}\s*(?:urgent\s+)?new\s+task\b|(?-i:\bPRIORITY\s+TASK:)",
        block=False,
    ),
    # system_prompt_extraction
    _rule(
        "system_prompt_extraction",
        rf"\b{_REVEAL}\s+{_FILLER}{_PROMPT_TARGET}",
        block=True,
    ),
    _rule(
        "system_prompt_extraction",
        r"\b(?:starting|beginning|that\s+starts?|which\s+starts?)\s+with\s+(?:the\s+)?"
        r"(?:phrase\s+|words\s+)?['\"“‘]you\s+are\b",
        block=True,
    ),
    _rule(
        "system_prompt_extraction",
        r"\b(?:system\s+(?:prompt|message)|initial\s+prompt|hidden\s+instructions"
        r"|developer\s+message|prompt\s+above)\b",
        block=False,
    ),
    # secret_extraction
    _rule(
        "secret_extraction",
        rf"\b{_REVEAL}\s+{_FILLER}{_SECRET}",
        block=True,
    ),
    _rule("secret_extraction", _SECRET, block=False),
    # role_override
    _rule(
        "role_override",
        r"\byou\s+are\s+(?:now\s+)?(?:DAN|STAN|DUDE)\b|\bdo\s+anything\s+now\b",
        block=True,
    ),
    _rule(
        "role_override",
        r"\b(?:DEVELOPER|DEV|GOD|ADMIN|SUDO|ROOT|JAILBREAK|UNRESTRICTED|DEBUG|DAN)\s+MODE\s+"
        r"(?:IS\s+|HAS\s+BEEN\s+)?(?:NOW\s+)?(?:ENABLED|ACTIVATED|ON|UNLOCKED|ENGAGED)\b",
        block=True,
        case=True,
    ),
    _rule(
        "role_override",
        r"\b(?:god|jailbreak|jailbroken|unrestricted|dan)\s+mode\s+(?:is\s+|has\s+been\s+)?"
        r"(?:now\s+)?(?:enabled|activated|on|unlocked|engaged)\b",
        block=True,
    ),
    _rule(
        "role_override",
        r"\byou\s+are\s+(?:now\s+)?(?:operating|running|working)\s+(?:in|as)\s+(?:an?\s+|the\s+)?"
        r"(?:developer|dev|god|admin|sudo|root|jailbreak|unrestricted|debug|no[\s-]limits?)\b",
        block=True,
    ),
    _rule(
        "role_override",
        r"\b(?:you\s+are|you're|act\s+as|behave\s+as|pretend\s+(?:to\s+be|you\s+are)|become)"
        r"\s+(?:now\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken"
        r"|no[\s-]limits?|limitless|unaligned|rogue|evil)\b",
        block=True,
    ),
    _rule(
        "role_override",
        r"\b(?:free|freed|released|liberated|exempt)\s+from\s+(?:all|any|your)\s+"
        r"(?:\w+\s+)?(?:constraints|restrictions|rules|limitations|guidelines|boundaries)"
        r"|\bnot\s+(?:subject|bound)\s+to\s+any\s+(?:\w+\s+)?"
        r"(?:restrictions|rules|guidelines|limitations|constraints)"
        r"|\bdisregard\s+all\s+(?:boundaries|limits|limitations)",
        block=True,
    ),
    _rule(
        "role_override",
        r"\b(?:grant|give|assign)\s+(?:me\s+|us\s+|yourself\s+)?(?:temporary|session)\s+"
        r"(?:admin(?:istrat(?:ive|or))?|root|sudo|superuser|elevated)\s+"
        r"(?:privileges|access|rights|permissions|role)",
        block=True,
    ),
    _rule(
        "role_override",
        r"\b(?:you\s+are\s+now|from\s+now\s+on\s+you\s+are|act\s+as|pretend\s+(?:to\s+be"
        r"|you\s+are)|roleplay\s+as)\b|\b(?:developer|god|jailbreak|sudo)\s+mode\b|\bjailbr[eo]"
        r"|\b(?:i\s+am|i'm)\s+(?:the|your|an?)\s+(?:admin|administrator|developer|owner|system)\b"
        r"|\brole\s+(?:to|=|:)\s*['\"]?admin\b|\bwithout\s+(?:any\s+)?(?:restrictions"
        r"|limitations|filters|guardrails|censorship)\b|\bno\s+limits\s+ai\b"
        r"|\b(?:elevate|escalate)\s+(?:my\s+|your\s+)?(?:privileges|permissions|role)\b"
        r"|\badministrative\s+privileges\b",
        block=False,
    ),
    # delimiter_injection
    _rule(
        "delimiter_injection",
        r"<\|[a-z_]{2,30}\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>"
        r"|<\|?(?:im_start|im_end|endoftext|eot_id)\|?>",
        block=True,
    ),
    _rule(
        "delimiter_injection",
        r"^\s*#{1,6}\s*(?:system|assistant|developer|new\s+instructions|system\s+prompt)"
        r"\s*:?\s*$|^\s*#{1,6}\s*(?:system|assistant|developer)\s*:",
        block=True,
    ),
    _rule(
        "delimiter_injection",
        r"^\s*\[(?:system|assistant|developer)\]|</?(?:system|system[-_]prompt|developer"
        r"|interaction-config|im_start|assistant)(?:\s[^>]{0,40})?>|```\s*system\b"
        r"|[\"'](?:role)[\"']\s*:\s*[\"'](?:system|developer)[\"']"
        r"|[\"'](?:system)[\"']\s*:\s*[{\[\"']",
        block=True,
    ),
    _rule("delimiter_injection", r"^(?:SYSTEM|ASSISTANT|DEVELOPER)\s*:", block=True, case=True),
    _rule(
        "delimiter_injection",
        r"\n\s*(?:system|assistant|developer)\s*:",
        block=True,
    ),
    _rule(
        "delimiter_injection",
        r"^\s*(?:system|assistant|developer)\s*(?:message|prompt|note|override)?\s*:"
        r"|\bend\s+of\s+(?:the\s+)?(?:user\s+)?(?:input|prompt|conversation|instructions)\b",
        block=False,
    ),
    # tool_coercion
    _rule(
        "tool_coercion",
        r"\b(?:owner_?id|user_?id|userid|as_user|tenant_?id|account_?id|acting_?user"
        r"|on_?behalf_?of)[\"'`]?\s*[:=]\s*[\"'`]?[\w*@.-]"
        r"|[\"'`](?:owner|user|role|tenant|account)[\"'`]\s*:\s*[\"'`\w*]"
        r"|\b(?:owner|user|role|tenant)\s*=\s*[\"'`]?[\w*@.-]",
        block=True,
    ),
    _rule(
        "tool_coercion",
        r"\b(?:impersonat\w*|logged\s+in\s+as|authenticated\s+as|acting\s+as|on\s+behalf\s+of"
        r"|as|for|of|belongs?\s+to|belonging\s+to|owned\s+by)\s+(?:the\s+)?(?:user|account"
        r"|owner)\s+(?:named\s+|called\s+|id\s+)?['\"`]?"
        rf"(?!{_NOT_A_NAME})[a-z0-9_.@-]+['\"`]?{_NAME_END}"
        r"|\b(?:belongs?|belonging)\s+to\s+(?:another|other|a\s+different|someone\s+else's)"
        r"\s+(?:user|account)\b",
        block=True,
    ),
    _rule(
        "tool_coercion",
        rf"\b(?:all|every|each|other|another|any|different|everyone|everybody)\s*"
        rf"(?:of\s+the\s+)?{_USERS}?(?:'s|s'|')\s+(?:\w+\s+)?{_OWNED}\b"
        rf"|\b{_OWNED}\s+(?:of|from|belonging\s+to|owned\s+by)\s+(?:all|every|other|another"
        rf"|each|different)\s+{_USERS}\b"
        rf"|\b{_OWNED}\s+(?:of|belonging\s+to|owned\s+by)\s+(?:the\s+)?user\s+['\"`]?"
        rf"(?!{_NOT_A_NAME})\w+"
        r"|\buser\s+['\"`]?\w+['\"`]?'s\s+(?:\w+\s+)?(?:tasks?|data|threads?|lists?)\b"
        rf"|\b(?:all|every)\s+{_USERS}\s+(?:and|with)\s+their\s+{_OWNED}\b",
        block=True,
    ),
    _rule(
        "tool_coercion",
        rf"\b{_TOOLS}\b|\bwithout\s+(?:asking|approval|confirmation|permission)\b"
        r"|\b(?:approval|confirmation)\s+(?:is|has\s+been|was)\s+(?:already\s+)?(?:granted|given)"
        r"|\b(?:call|invoke|execute|trigger)\s+(?:the\s+|this\s+)?(?:\w+\s+)?(?:tool|function)\b"
        r"|\bowner\s*:|\bon\s+behalf\s+of\b"
        r"|\b(?:set|change|transfer|reassign|assign)\s+(?:its\s+|the\s+|my\s+)?"
        r"(?:owner|ownership)\b",
        block=False,
    ),
    # sql_injection: the tools take validated arguments, but an attempt is still an attempt
    _rule(
        "sql_injection",
        r"\b(?:drop|truncate|alter)\s+table\b|\bupdate\s+\w+\s+set\s+\w+\s*=|\bunion\s+select\b"
        r"|\bdelete\s+from\s+\w+\s+where\b|\bselect\s+\*\s+from\b|\binsert\s+into\s+\w+"
        r"|'\s*or\s+'?\w+'?\s*=\s*'?\w+|'\s*;\s*--",
        block=True,
    ),
    # encoding_obfuscation
    _rule(
        "encoding_obfuscation",
        r"\b(?:base64|base-64|rot-?13|hex[\s-]?encoded|l33t|leetspeak|caesar\s+cipher"
        r"|encoded\s+format|decode\s+(?:this|the\s+following)|reversed?\s+(?:text|string|order))\b",
        block=False,
    ),
    _rule("encoding_obfuscation", r"(?:\b[a-z]\s){6,}[a-z]\b", block=False),
)

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
        "ј": "j", "ѕ": "s", "ԁ": "d", "ɡ": "g", "ո": "n", "ν": "v", "ο": "o", "α": "a",
        "ι": "i", "κ": "k", "τ": "t", "Α": "A", "В": "B", "Е": "E", "К": "K", "М": "M",
        "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "І": "I",
    }
)  # fmt: skip
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_SPACES = re.compile(r"[ \t\f\v]+")


def _normalize(text: str) -> tuple[str, bool]:
    """Fold the text attackers use to hide words; report whether anything hidden was found."""
    folded = unicodedata.normalize("NFKC", text)
    visible = _INVISIBLE.sub("", folded)
    latin = visible.translate(_CONFUSABLES)
    hidden = visible != folded or (latin != visible and _mixes_scripts(visible))
    latin = latin.replace("’", "'").replace("‘", "'")
    return _SPACES.sub(" ", latin), hidden


def _mixes_scripts(text: str) -> bool:
    """Whether one word mixes Latin letters with look-alike Cyrillic or Greek ones."""
    for word in re.findall(r"\w+", text):
        scripts = {
            unicodedata.name(char, "").split(" ", 1)[0]
            for char in word
            if char.isalpha() and not char.isascii()
        }
        if scripts & {"CYRILLIC", "GREEK"} and any(c.isascii() and c.isalpha() for c in word):
            return True
    return False


def _decoded_payloads(text: str) -> Iterable[str]:
    """Yield readable text hidden as base64 inside `text`."""
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        printable = sum(c.isprintable() or c.isspace() for c in decoded)
        if decoded and printable / len(decoded) > 0.9 and re.search(r"[a-zA-Z]{3}", decoded):
            yield decoded


def _scan(text: str) -> tuple[list[str], bool]:
    flags: list[str] = []
    block = False
    for rule in _RULES_TABLE:
        if rule.pattern.search(text):
            if rule.flag not in flags:
                flags.append(rule.flag)
            block = block or rule.block
    return flags, block


def detect_injection(text: str) -> InjectionVerdict:
    """Return the names of the injection patterns in `text` and whether it is a clear attack."""
    normalized, hidden = _normalize(text)
    flags, block = _scan(normalized)
    if hidden:
        flags.append("encoding_obfuscation")
    for payload in _decoded_payloads(normalized):
        inner_flags, inner_block = _scan(_normalize(payload)[0])
        if inner_flags:
            flags.extend(f for f in ["encoding_obfuscation", *inner_flags] if f not in flags)
            block = block or inner_block
    return InjectionVerdict(flags=list(dict.fromkeys(flags)), block=block)
