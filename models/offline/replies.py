"""Wording for the offline engine: text answers and sentences built from tool results.

Pure functions only; the same inputs always give the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from models.offline.intents import TextIntent

__all__ = [
    "CLARIFYING_QUESTIONS",
    "SUGGESTION",
    "ToolOutcome",
    "ask_for_id_reply",
    "batch_lookup_reply",
    "call_task_id",
    "describe_task",
    "lookup_many_reply",
    "lookup_none_reply",
    "need_task_reply",
    "not_allowed_reply",
    "nothing_to_undo_reply",
    "results_reply",
    "tag_unchanged_reply",
    "text_reply",
    "undo_lost_reply",
]

ENGINE = "the built-in offline engine"

EXAMPLES = (
    '"Create a high-priority task for the quarterly review due next Friday"',
    '"What\'s overdue?" or "show my high priority tasks"',
    '"Move TASK-0002 to next Monday" or "set the report to urgent"',
    '"Mark TASK-0003 done", "delete the grocery task" or "give me a summary"',
)

_ACTIONS = {
    "create_task": "create that task",
    "list_tasks": "list your tasks",
    "get_task": "show that task",
    "update_task": "change that task",
    "complete_task": "mark that task as done",
    "delete_task": "delete that task",
    "task_summary": "summarise your tasks",
}
_VERBS = {
    "get_task": "show",
    "update_task": "update",
    "complete_task": "mark as done",
    "delete_task": "delete",
    "list_tasks": "show",
}
_WHICH_TASK = "Which task do you mean?"
_WHICH_ONE = "Which one should I"
CLARIFYING_QUESTIONS = (_WHICH_TASK, _WHICH_ONE)
"""Phrases that mark a reply asking which task was meant; a bare id answers them."""
SUGGESTION = "Should I add it as a task?"
"""Marks our offer to add a message that reads like a task; "yes" accepts it."""
_STATUS_WORDS = {"pending": "pending", "in_progress": "in progress", "completed": "completed"}
_NOT_DONE = re.compile(
    r"approv|reject|denied|deny|declin|not\s+allowed|permission|forbidden|refused|cancel",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ToolOutcome:
    """One finished tool call: what was asked and the parsed JSON result."""

    name: str
    args: dict[str, Any]
    payload: dict[str, Any]


def call_task_id(args: dict[str, Any]) -> str | None:
    """The task a call names: `task_id`, or `task` (the newer name for the same argument)."""
    value = args.get("task_id", args.get("task"))
    return str(value) if isinstance(value, str) and value else None


# --- text-only answers ----------------------------------------------------------------------


def _examples(count: int = 4) -> str:
    return "\n".join(f"- {example}" for example in EXAMPLES[:count])


def help_text() -> str:
    """Return the help message listing what the engine understands."""
    return (
        f"I'm {ENGINE}: I manage your tasks from plain English. For example:\n"
        '- "Create a high-priority task for the quarterly review due next Friday"\n'
        '- "Remind me to call mom tomorrow" or "add buy milk to my list #home"\n'
        '- "List my tasks", "what\'s overdue?", "pending tasks due this week", '
        '"tasks about report"\n'
        '- "Rename TASK-0002 to Budget draft", "set the quarterly review to urgent", '
        '"move it to next Monday"\n'
        '- "Start TASK-0004", "mark TASK-0003 done", "I finished the report", '
        '"mark 2 and 3 done"\n'
        '- "Delete TASK-0002" (deleting needs your approval)\n'
        '- "Add milk, eggs and bread", "what\'s due in the next 7 days?", "tasks tagged home"\n'
        '- "Undo that" reverses my last change in this conversation (a deletion can\'t be undone)\n'
        '- "Give me a summary"\n'
        "Due dates can be written as 2026-12-03, tomorrow, next Friday, by Dec 3 or in 2 weeks."
    )


_HOWTO = {
    "create_task": (
        'Just tell me, for example "add buy milk to my list" or "create a high-priority task for '
        'the quarterly review due next Friday". You can add a due date ("tomorrow", "by Dec 3"), '
        'a priority ("urgent", "low priority") and tags ("#work").'
    ),
    "delete_task": (
        'Say "delete TASK-0002" or "remove the grocery task". Deleting is permanent, so you '
        "will be asked to approve it first."
    ),
    "complete_task": 'Say "mark TASK-0003 done", "complete task 3" or "I finished the report".',
    "update_task": (
        'Say what to change, for example "rename TASK-0002 to Budget draft", "set the quarterly '
        'review to urgent", "move it to next Monday" or "start TASK-0004".'
    ),
    "list_tasks": (
        'Ask "list my tasks", "what\'s overdue?", "show my high priority tasks", "completed tasks" '
        'or "tasks about report".'
    ),
    "task_summary": 'Ask "give me a summary" or "how am I doing?".',
}
_PRIORITIES = "There are four priorities, from lowest to highest: low, normal, high and urgent."
_STATUSES = "A task is pending (not started), in progress (started) or completed (done)."
_TAGS = 'Tags are free-form labels such as #work or #home; add them with "#work" or "tagged work".'
_TERMS = {
    "urgent": "Urgent is the highest priority: do it first, it can't wait.",
    "high": "High priority means important and should be done soon, right after anything urgent.",
    "normal": "Normal is the default priority for everyday tasks.",
    "medium": "Medium is what I call normal priority, the default for everyday tasks.",
    "low": "Low priority means it can wait: do it whenever you get a chance.",
    "pending": "Pending means not started yet.",
    "in progress": "In progress means you have started working on it.",
    "completed": "Completed means done; completed tasks are never overdue.",
    "done": "Done means the task is completed.",
    "overdue": "Overdue means an open task whose due date has passed.",
    "priority levels": _PRIORITIES,
    "priorities": _PRIORITIES,
    "priority": "A priority says how important a task is. " + _PRIORITIES,
    "status values": _STATUSES,
    "statuses": _STATUSES,
    "status": _STATUSES,
    "tags": _TAGS,
    "tag": _TAGS,
}


def _explain(term: str) -> str:
    for key, sentence in _TERMS.items():
        if re.search(rf"\b{re.escape(key)}\b", term):
            return sentence
    return (
        f"I'm {ENGINE} and I only know task terms: priorities (low, normal, high, urgent), "
        "statuses (pending, in progress, completed), due dates, tags and overdue."
    )


def text_reply(intent: TextIntent) -> str:
    """Answer a message that needs no tool call."""
    kind, topic = intent.kind, intent.topic
    if kind == "help":
        return help_text()
    if kind == "greeting":
        return (
            "Hi! I can create, list, update, complete and delete your tasks. "
            'Try "what\'s on my plate?" or "remind me to call mom tomorrow".'
        )
    if kind == "thanks":
        return "You're welcome! Anything else I can do for your tasks?"
    if kind == "goodbye":
        return "You're welcome, glad I could help. Bye for now!"
    if kind == "clarify_mixed":
        verb = _VERBS.get(topic, "change")
        return (
            f"I can {verb} several tasks in one go only when you give all of their ids, so I "
            f'haven\'t changed anything. Try "{verb} TASK-0002 and TASK-0003", or name one task '
            "at a time."
        )
    if kind == "clarify_dates":
        return (
            "I found more than one date in that and I'm not sure which task each belongs to, so I "
            "haven't added anything. Try one task per message, or \"add call mom tomorrow; pay "
            'rent on friday".'
        )
    if kind == "too_many":
        return (
            f"That's {topic} tasks in one message; I handle at most 10 at a time, so I haven't "
            "changed anything. Please split the list."
        )
    if kind == "suggest_create":
        return f'"{topic}" sounds like a task. {SUGGESTION} Say "yes", or tell me what you meant.'

    if kind == "acknowledge":
        return (
            'OK. Tell me what to do with your tasks, for example "list my tasks" or '
            '"mark TASK-0003 done".'
        )
    if kind == "decline":
        return "OK, I won't create or change anything. Tell me when you're ready."
    if kind == "howto":
        return _HOWTO.get(topic, help_text())
    if kind == "explain":
        return _explain(topic)
    if kind == "advice":
        extra = " Deleting is permanent and needs your approval." if topic == "delete_task" else ""
        return (
            "That's your call; I won't change anything unless you ask me to."
            + extra
            + " To help you "
            'decide, try "show completed tasks", "what\'s overdue?" or "give me a summary".'
        )
    if kind == "capability":
        return "Yes, I can do that. " + _HOWTO.get(topic, help_text())
    if kind == "bulk":
        return (
            "I change one task at a time, so I haven't changed anything. Tell me which task, for "
            'example "delete TASK-0002", or ask "show completed tasks" to see candidates.'
        )
    if kind == "clarify_title":
        return 'What should the task be called? For example: "add buy milk to my list".'
    if kind == "clarify_task":
        return need_task_reply()
    if kind == "clarify_change":
        return _clarify_change(topic)
    detail = f' "{topic}"' if topic else " that"
    return (
        f"I'm {ENGINE}, so I only understand task requests, and I didn't understand{detail}. "
        f"You could try:\n{_examples()}"
    )


def _clarify_change(topic: str) -> str:
    field, _, value = topic.partition(":")
    if field == "date":
        return (
            f'I couldn\'t understand the date "{value}", so I changed nothing. Try "tomorrow", '
            '"next Friday", "Dec 3", "in 2 weeks" or 2026-12-03.'
        )
    if field == "priority":
        return f'"{value}" is not a priority I know; use low, normal, high or urgent.'
    return (
        'What should I change? For example "set TASK-0002 to urgent", "move it to next Monday" '
        'or "rename TASK-0002 to Budget draft".'
    )


def need_task_reply() -> str:
    """Ask which task the user means when a reference could not be resolved."""
    return f"{_WHICH_TASK} Give me its id (e.g. TASK-0003) or a few words from its title."


def not_allowed_reply(tool: str, task_id: str | None = None) -> str:
    """Say plainly that a tool is not available in this conversation."""
    action = _ACTIONS.get(tool, f"use {tool}")
    if task_id:
        action = action.replace("that task", task_id)
    return (
        f"I'm not allowed to {action} here: the {tool} tool isn't available to me in this "
        "conversation, so I didn't do it."
    )


def nothing_to_undo_reply() -> str:
    """Say there is no change in this conversation to undo."""
    return "There's nothing to undo: I haven't changed any task in this conversation yet."


def undo_lost_reply(changes: list[ToolOutcome]) -> str:
    """Say which changes cannot be undone: deleted tasks are gone, and how to add them again."""
    deleted = [d for c in changes if isinstance(d := c.payload.get("deleted"), dict)]
    if not deleted:
        return "I can't undo that change: I don't know what the task looked like before it."
    names = " and ".join(f'{d.get("id", "?")} "{d.get("title", "")}"' for d in deleted)
    verb = "is" if len(deleted) == 1 else "are"
    return (
        f"I can't undo a deletion: {names} {verb} gone for good. "
        f'Say "add {deleted[0].get("title", "")}" to create it again as a new task.'
    )


def tag_unchanged_reply(task: dict[str, Any], added: list[str]) -> str:
    """Say that a tag edit would change nothing (the tag is already there, or was never there)."""
    head = f'{task.get("id", "?")} "{task.get("title", "")}"'
    tags = ", ".join(f"#{t}" for t in task.get("tags") or []) or "no tags"
    state = "already has" if added else "doesn't have"
    return f"{head} {state} that tag, so nothing changed (its tags: {tags})."


def ask_for_id_reply(words: str) -> str:
    """Ask for an id when the title look-up tool is unavailable."""
    return (
        f'I can\'t search for "{words}" here, so please give me the task id instead '
        "(for example TASK-0003)."
    )


# --- task formatting ------------------------------------------------------------------------


def _day(iso: str) -> str:
    try:
        return f"{date.fromisoformat(iso):%a} {iso}"
    except ValueError:
        return iso


def _is_overdue(task: dict[str, Any], today: date) -> bool:
    due = task.get("due_date")
    if not due or task.get("status") == "completed":
        return False
    try:
        return date.fromisoformat(str(due)) < today
    except ValueError:
        return False


def _details(task: dict[str, Any], today: date, with_status: bool) -> list[str]:
    parts = [f"{task.get('priority', 'normal')} priority"]
    status = str(task.get("status", "pending"))
    if with_status or status != "pending":
        parts.insert(0, _STATUS_WORDS.get(status, status))
    if task.get("due_date"):
        parts.append(
            f"due {_day(str(task['due_date']))}" + (", overdue" if _is_overdue(task, today) else "")
        )
    tags = task.get("tags") or []
    if tags:
        parts.append("tagged " + ", ".join(f"#{t}" for t in tags))
    return parts


def describe_task(task: dict[str, Any], today: date, with_status: bool = False) -> str:
    """One line for a task: 'TASK-0001 "Title" (high priority, due Fri 2026-11-27)'."""
    details = ", ".join(_details(task, today, with_status))
    return f'{task.get("id", "?")} "{task.get("title", "")}" ({details})'


def _bullets(tasks: list[dict[str, Any]], today: date) -> str:
    return "\n".join(f"- {describe_task(task, today)}" for task in tasks)


def _count(value: Any, default: int = 0) -> int:
    """A count from a tool result, tolerating missing or malformed values."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# --- look-up follow-ups ---------------------------------------------------------------------


def lookup_none_reply(tool: str, words: str) -> str:
    """Say that no task matched the title words, so nothing was done."""
    verb = _VERBS.get(tool, "change")
    return (
        f"I couldn't find a task matching \"{words}\", so I didn't {verb} anything. "
        'Try "list my tasks" to see their ids.'
    )


def lookup_many_reply(tool: str, words: str, tasks: list[dict[str, Any]], today: date) -> str:
    """List the candidates and ask which one the user meant."""
    verb = _VERBS.get(tool, "change")
    first = tasks[0].get("id", "TASK-0001")
    return (
        f'I found {len(tasks)} tasks matching "{words}":\n{_bullets(tasks, today)}\n'
        f'{_WHICH_ONE} {verb}? Reply with its id, for example "{first}".'
    )


def batch_lookup_reply(problems: list[str]) -> str:
    """Say which of several tasks named by title could not be pinned down; nothing changed."""
    return "\n".join(problems) + "\nI haven't changed any of the tasks you named."


# --- tool results -----------------------------------------------------------------------------


def _error_reply(outcome: ToolOutcome) -> str:
    error = str(outcome.payload.get("error") or "something went wrong.").strip()
    if _NOT_DONE.search(error):
        task_id = call_task_id(outcome.args)
        action = _ACTIONS.get(outcome.name, f"run {outcome.name}")
        if task_id:
            action = action.replace("that task", str(task_id))
        return f"I did not {action}: {error}"
    return f"I couldn't do that: {error}"


def _filters_phrase(args: dict[str, Any]) -> str:
    """Describe list_tasks filters: 'overdue high-priority tasks due by Fri 2026-11-27'."""
    words = []
    if args.get("overdue"):
        words.append("overdue")
    if args.get("priority"):
        words.append(f"{args['priority']}-priority")
    if args.get("status"):
        words.append(_STATUS_WORDS.get(str(args["status"]), str(args["status"])).replace(" ", "-"))
    words.append("tasks")
    before, after = args.get("due_before"), args.get("due_after")
    if before and after:
        words.append(
            f"due {_day(before)}"
            if before == after
            else f"due between {_day(after)} and {_day(before)}"
        )
    elif before:
        words.append(f"due by {_day(before)}")
    elif after:
        words.append(f"due on or after {_day(after)}")
    if args.get("tag"):
        words.append(f"tagged #{args['tag']}")
    if args.get("text"):
        words.append(f'matching "{args["text"]}"')
    return " ".join(words)


def _list_reply(outcome: ToolOutcome, today: date) -> str:
    tasks = list(outcome.payload.get("tasks") or [])
    count = _count(outcome.payload.get("count"), len(tasks))
    phrase = _filters_phrase(outcome.args)
    if count == 0:
        if outcome.args.get("overdue") and phrase == "overdue tasks":
            return "Nothing is overdue."
        if phrase == "tasks":
            return 'You have no tasks yet. Try "add buy milk to my list".'
        return f"You have no {phrase}."
    noun = phrase.replace("tasks", "task", 1) if count == 1 else phrase
    text = f"You have {count} {noun}:\n{_bullets(tasks, today)}"
    if len(tasks) < count:
        text += f"\n(showing the first {len(tasks)})"
    return text


def _summary_reply(payload: dict[str, Any], today: date) -> str:
    total = _count(payload.get("total"))
    if total == 0:
        return 'You have no tasks yet. Try "add buy milk to my list".'
    by_status = payload.get("by_status") or {}
    by_priority = payload.get("by_priority") or {}
    done = _count(by_status.get("completed"))
    status_text = ", ".join(
        f"{_count(by_status.get(key))} {word}" for key, word in _STATUS_WORDS.items()
    )
    priority_text = ", ".join(
        f"{_count(by_priority.get(p))} {p}"
        for p in ("urgent", "high", "normal", "low")
        if by_priority.get(p)
    )
    lines = [
        f"You have {_plural(total, 'task')}: {status_text} ({round(100 * done / total)}% done)."
    ]
    if priority_text:
        lines.append(f"By priority: {priority_text}.")
    overdue = _count(payload.get("overdue"))
    overdue_tasks = list(payload.get("overdue_tasks") or [])
    if overdue:
        lines.append(f"Overdue: {overdue}.\n{_bullets(overdue_tasks, today)}".rstrip())
    else:
        lines.append("Nothing is overdue.")
    week = _count(payload.get("due_this_week"))
    week_tasks = list(payload.get("due_this_week_tasks") or [])
    if week:
        lines.append(f"Due this week: {week}.\n{_bullets(week_tasks, today)}".rstrip())
    if overdue:
        lines.append("I'd start with the overdue ones.")
    elif done == total:
        lines.append("Everything is done. Nice work!")
    return "\n".join(lines)


def _update_reply(payload: dict[str, Any], args: dict[str, Any], today: date) -> str:
    task = payload.get("task") or {}
    changed = payload.get("changed")
    fields = (
        list(changed)
        if isinstance(changed, list)
        else [k for k in args if k not in {"task_id", "task"}]
    )
    head = f'{task.get("id", call_task_id(args) or "?")} "{task.get("title", "")}"'
    if not fields:
        return f"{head} already had those values, so nothing changed."
    parts = []
    for name in fields:
        value = task.get(name)
        if name == "due_date":
            parts.append(f"due date is now {_day(str(value))}" if value else "due date removed")
        elif name == "status":
            parts.append(f"status is now {_STATUS_WORDS.get(str(value), str(value))}")
        elif name == "tags":
            parts.append("tags are now " + (", ".join(f"#{t}" for t in value or []) or "empty"))
        elif name == "description":
            parts.append("notes updated")
        else:
            parts.append(f"{name} is now {value}")
    return f"Updated {head}: " + "; ".join(parts) + "."


def _outcome_reply(outcome: ToolOutcome, today: date) -> str:
    payload = outcome.payload
    if not payload.get("ok", False):
        return _error_reply(outcome)
    task = payload.get("task") or {}
    if outcome.name == "create_task":
        return f"Created {describe_task(task, today)}."
    if outcome.name == "get_task":
        text = describe_task(task, today, with_status=True) + "."
        return text + (f" Notes: {task['description']}" if task.get("description") else "")
    if outcome.name == "update_task":
        return _update_reply(payload, outcome.args, today)
    if outcome.name == "complete_task":
        return f'Marked {task.get("id", "?")} "{task.get("title", "")}" as completed.'
    if outcome.name == "delete_task":
        deleted = payload.get("deleted") or {}
        task_id = deleted.get("id", call_task_id(outcome.args) or "?")
        return f'Deleted {task_id} "{deleted.get("title", "")}".'
    if outcome.name == "list_tasks":
        return _list_reply(outcome, today)
    if outcome.name == "task_summary":
        return _summary_reply(payload, today)
    return f"Done ({outcome.name})."


def results_reply(outcomes: list[ToolOutcome], today: date) -> str:
    """Turn the results of the latest tool calls into a plain-language answer."""
    if not outcomes:
        return "Done."
    return "\n".join(_outcome_reply(outcome, today) for outcome in outcomes)
