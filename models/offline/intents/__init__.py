"""Intent recognition for the offline engine: one user message in, one intent out.

Everything here is pure and deterministic: the same sentence and the same `today` always
give the same intent. Nothing here knows about messages or tool results; see
`models.offline.planner` for the conversation logic and `models.offline.replies` for the wording.
One module per intent family (create, complete/delete, update, reads, conversation), with
the shared pieces (task references, field values, text helpers) beside them; `parse` tries
them in order.
"""

from models.offline.intents.kinds import (
    ADD_TAGS,
    REMOVE_TAGS,
    BatchIntent,
    Intent,
    TaskRef,
    TextIntent,
    TextKind,
    ToolIntent,
    UndoIntent,
)
from models.offline.intents.parse import parse_intent
from models.offline.intents.refs import bare_task_id, loosen, normalize_task_id, task_ids_in
from models.offline.intents.typos import fix_typos

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
    "fix_typos",
    "loosen",
    "normalize_task_id",
    "parse_intent",
    "task_ids_in",
]
