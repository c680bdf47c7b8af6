"""The offline engine's decisions: what to answer next, given the whole conversation.

The reply is a pure function of the conversation: `plan_reply` reads the latest user
message (via `models.offline.intents`), looks at any tool results that came back since, and
either asks for one tool call or answers in words (via `models.offline.replies`). Nothing is
remembered between calls; a pending request survives a tool round-trip because it is
re-derived from the latest user message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage

from models.offline.intents import (
    ADD_TAGS,
    REMOVE_TAGS,
    BatchIntent,
    Intent,
    TaskRef,
    TextIntent,
    ToolIntent,
    UndoIntent,
    bare_task_id,
    loosen,
    parse_intent,
    task_ids_in,
)
from models.offline.replies import (
    CLARIFYING_QUESTIONS,
    SUGGESTION,
    ToolOutcome,
    ask_for_id_reply,
    batch_lookup_reply,
    call_task_id,
    lookup_many_reply,
    lookup_none_reply,
    need_task_reply,
    not_allowed_reply,
    nothing_to_undo_reply,
    results_reply,
    tag_unchanged_reply,
    text_reply,
    undo_lost_reply,
)
from tools.schemas import MUTATING_TOOLS, UpdateTaskArgs

__all__ = ["ENGINE_NAME", "Reply", "plan_reply"]

ENGINE_NAME = "offline-engine"
# A look-up plus the real action is two rounds; anything beyond that means something is off,
# so the engine stops calling tools and reports what it has.
_MAX_TOOL_ROUNDS = 3


@dataclass(frozen=True)
class Reply:
    """What the engine answers: text, or tool calls as (name, args) pairs."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


# --- reading the conversation -----------------------------------------------------------------


def _payload(message: ToolMessage) -> dict[str, Any]:
    """Parse a tool result; anything that is not the JSON contract counts as an error."""
    raw = message.text
    try:
        data = json.loads(raw)
    except ValueError:
        return {"ok": False, "error": raw.strip() or "The tool returned nothing."}
    if not isinstance(data, dict):
        return {"ok": False, "error": "The tool returned an unexpected result."}
    if getattr(message, "status", "success") == "error" and "error" not in data:
        return {"ok": False, "error": raw}
    return data


def _ids_in(message: BaseMessage) -> list[str]:
    """Task ids a message refers to, used to resolve "it"."""
    if isinstance(message, ToolMessage):
        payload = _payload(message)
        ids: list[str] = []
        for task in [payload.get("task"), payload.get("deleted"), *(payload.get("tasks") or [])]:
            if isinstance(task, dict) and isinstance(task.get("id"), str):
                ids.append(task["id"])
        return list(dict.fromkeys(ids)) or task_ids_in(str(payload.get("error", "")))
    if isinstance(message, HumanMessage):
        return task_ids_in(message.text)
    if isinstance(message, AIMessage):
        # Only the calls count: reply text may quote example ids ("say delete TASK-0002").
        return list(
            dict.fromkeys(
                task_id for c in message.tool_calls if (task_id := call_task_id(c["args"]))
            )
        )
    return []


def _recent_task_id(history: Sequence[BaseMessage]) -> str | None:
    """The task most recently mentioned: the newest message naming ids decides, if it names one.

    The results of one reply's calls count as one message: after three tasks were created
    together, "it" is ambiguous rather than the last of them.
    """
    block: list[str] = []
    for message in reversed(history):
        if isinstance(message, ToolMessage):
            block += [i for i in _ids_in(message) if i not in block]
            continue
        ids = block or _ids_in(message)
        if ids:
            return ids[0] if len(ids) == 1 else None
    return block[0] if len(block) == 1 else None


def _recent_list(history: Sequence[BaseMessage]) -> list[str]:
    """Ids of the newest task list shown in the conversation, in the order shown."""
    for message in reversed(history):
        if isinstance(message, ToolMessage):
            tasks = _payload(message).get("tasks")
            if isinstance(tasks, list):
                return [str(t["id"]) for t in tasks if isinstance(t, dict) and "id" in t]
    return []


def _pair(calls: list[ToolCall], answers: list[ToolMessage]) -> list[tuple[ToolCall, ToolMessage]]:
    """Match tool calls with their results by id (or in order, if no id matches at all)."""
    by_id = {m.tool_call_id: m for m in answers}
    if any(str(call["id"]) in by_id for call in calls):
        return [(call, by_id[str(call["id"])]) for call in calls if str(call["id"]) in by_id]
    return list(zip(calls, answers, strict=False))


def _last_round(after_user: Sequence[BaseMessage]) -> tuple[int, list[ToolOutcome]]:
    """Count tool-call rounds since the user spoke and collect the newest round's results."""
    rounds = 0
    outcomes: list[ToolOutcome] = []
    for index, message in enumerate(after_user):
        if isinstance(message, AIMessage) and message.tool_calls:
            rounds += 1
            answers = [m for m in after_user[index + 1 :] if isinstance(m, ToolMessage)]
            outcomes = [
                ToolOutcome(call["name"], dict(call["args"]), _payload(answer))
                for call, answer in _pair(message.tool_calls, answers)
            ]
    return rounds, outcomes


def _intent(messages: Sequence[BaseMessage], user_index: int, today: date) -> Intent:
    """Parse the latest user message; a bare id answering our question reuses the request.

    A "yes" to our offer to add a task ("Should I add it as a task?") adds it.
    """
    text = messages[user_index].text
    earlier = messages[:user_index]
    previous_user = next((m for m in reversed(earlier) if isinstance(m, HumanMessage)), None)
    chosen = bare_task_id(text)
    if chosen is None:
        intent = parse_intent(text, today)
        last = earlier[-1] if earlier else None
        offered = isinstance(last, AIMessage) and SUGGESTION in last.text
        if intent == TextIntent("acknowledge") and offered and previous_user is not None:
            previous = parse_intent(previous_user.text, today)
            if isinstance(previous, TextIntent) and previous.kind == "suggest_create":
                return parse_intent("add " + previous.topic, today)
        return intent
    asked = (
        bool(earlier)
        and isinstance(earlier[-1], AIMessage)
        and any(marker in earlier[-1].text for marker in CLARIFYING_QUESTIONS)
    )
    if asked and previous_user is not None:
        previous = parse_intent(previous_user.text, today)
        if isinstance(previous, ToolIntent) and previous.target is not None:
            return ToolIntent(previous.tool, previous.args, TaskRef(task_id=chosen))
    return ToolIntent("get_task", {}, TaskRef(task_id=chosen))


# --- deciding what to do ----------------------------------------------------------------------


def _call(tool: str, task_id: str | None, args: dict[str, Any]) -> Reply:
    if task_id and _edits_tags(args):
        # Adding or removing one tag needs the task's current tags: read it first.
        return Reply(tool_calls=[("get_task", {"task_id": task_id})])
    full = ({"task_id": task_id} if task_id else {}) | args
    return Reply(tool_calls=[(tool, full)])


def _edits_tags(args: dict[str, Any]) -> bool:
    return ADD_TAGS in args or REMOVE_TAGS in args


def _tag_edit(intent: ToolIntent, task: dict[str, Any]) -> Reply:
    """The update that adds or removes the asked-for tags on `task`, or why nothing changes."""
    current = [t for t in task.get("tags") or [] if isinstance(t, str)]
    added = [t for t in intent.args.get(ADD_TAGS, []) if t not in current]
    removed = [t for t in intent.args.get(REMOVE_TAGS, []) if t in current]
    if not added and not removed:
        return Reply(tag_unchanged_reply(task, intent.args.get(ADD_TAGS, [])))
    rest = {k: v for k, v in intent.args.items() if k not in {ADD_TAGS, REMOVE_TAGS}}
    tags = [t for t in current if t not in removed] + added
    full = {"task_id": str(task.get("id"))} | rest | {"tags": tags}
    return Reply(tool_calls=[("update_task", full)])


def _turns(history: Sequence[BaseMessage]) -> list[tuple[str, list[ToolOutcome]]]:
    """Each user message of `history` with the changes that succeeded in reply to it."""
    turns: list[tuple[str, list[ToolOutcome]]] = []
    for index, message in enumerate(history):
        if isinstance(message, HumanMessage):
            turns.append((message.text, []))
        elif isinstance(message, AIMessage) and message.tool_calls and turns:
            answers: list[ToolMessage] = []
            for later in history[index + 1 :]:
                if not isinstance(later, ToolMessage):
                    break
                answers.append(later)
            turns[-1][1].extend(
                ToolOutcome(call["name"], dict(call["args"]), payload)
                for call, answer in _pair(message.tool_calls, answers)
                if call["name"] in MUTATING_TOOLS and (payload := _payload(answer)).get("ok")
            )
    return turns


def _last_changes(history: Sequence[BaseMessage], today: date) -> list[ToolOutcome]:
    """The changes an "undo" now reverses: the newest turn's that no later undo reversed."""
    pending_undos = 0
    for text, changes in reversed(_turns(history)):
        if not changes:
            continue
        if isinstance(parse_intent(text, today), UndoIntent):
            pending_undos += 1
        elif pending_undos:
            pending_undos -= 1
        else:
            return changes
    return []


def _reversal(change: ToolOutcome) -> tuple[str, dict[str, Any]] | None:
    """The call that puts one change back, or None for a deletion (it cannot be undone)."""
    task = change.payload.get("task")
    task_id = str(task.get("id")) if isinstance(task, dict) else call_task_id(change.args)
    if change.name == "create_task" and task_id:
        return "delete_task", {"task_id": task_id}
    previous = change.payload.get("previous")
    if change.name in {"update_task", "complete_task"} and task_id:
        if not isinstance(previous, dict) or not previous:
            previous = {"status": "pending"} if change.name == "complete_task" else {}
        # An empty due date clears it; None would mean "leave as it is". Bookkeeping such as
        # completed_at follows the status and is not an argument update_task takes.
        fields = UpdateTaskArgs.model_fields.keys() - {"task"}
        values = {k: ("" if v is None else v) for k, v in sorted(previous.items()) if k in fields}
        return ("update_task", {"task_id": task_id} | values) if values else None
    return None


def _undo(history: Sequence[BaseMessage], today: date, allowed: frozenset[str]) -> Reply:
    """Reverse the last change made in this conversation, or say honestly why not."""
    changes = _last_changes(history, today)
    if not changes:
        return Reply(nothing_to_undo_reply())
    calls = [call for change in reversed(changes) if (call := _reversal(change)) is not None]
    if not calls:
        return Reply(undo_lost_reply(changes))
    refused = next((name for name, _ in calls if name not in allowed), None)
    if refused is not None:
        return Reply(not_allowed_reply(refused))
    return Reply(tool_calls=calls)


def _start(
    intent: Intent, history: Sequence[BaseMessage], allowed: frozenset[str], today: date
) -> Reply:
    """First step for a fresh user message: answer, or call the tool (or a look-up first)."""
    if isinstance(intent, TextIntent):
        return Reply(text_reply(intent))
    if isinstance(intent, UndoIntent):
        return _undo(history, today, allowed)
    if isinstance(intent, BatchIntent):
        refused = next((i.tool for i in intent.intents if i.tool not in allowed), None)
        if refused is not None:
            return Reply(not_allowed_reply(refused))
        titles = _batch_words(intent)
        if titles:
            if "list_tasks" not in allowed:
                return Reply(ask_for_id_reply(titles[0]))
            return Reply(tool_calls=[("list_tasks", {"text": w}) for w in titles])
        return Reply(
            tool_calls=[
                _call(i.tool, i.target.task_id if i.target else None, i.args).tool_calls[0]
                for i in intent.intents
            ]
        )
    target = intent.target
    if intent.tool not in allowed:
        return Reply(not_allowed_reply(intent.tool, target.task_id if target else None))
    if target is None:
        return _call(intent.tool, None, intent.args)
    if target.task_id:
        return _call(intent.tool, target.task_id, intent.args)
    if target.pronoun:
        recent = _recent_task_id(history)
        return _call(intent.tool, recent, intent.args) if recent else Reply(need_task_reply())
    if target.position is not None:
        listed = _recent_list(history)
        if len(listed) < target.position:
            return Reply(need_task_reply())
        return _call(intent.tool, listed[target.position - 1], intent.args)
    words = target.words or ""
    if "list_tasks" not in allowed:
        return Reply(ask_for_id_reply(words))
    return _call("list_tasks", None, {"text": words})


def _is_lookup(intent: ToolIntent, outcomes: list[ToolOutcome]) -> bool:
    """Whether the newest results answer the title look-up this request needed."""
    return (
        intent.target is not None
        and intent.target.words is not None
        and len(outcomes) == 1
        and outcomes[0].name == "list_tasks"
        and outcomes[0].args.get("text") in {intent.target.words, loosen(intent.target.words)}
    )


def _pick(tasks: list[dict[str, Any]], words: str, tool: str) -> list[dict[str, Any]]:
    """Narrow look-up matches: an exact title wins; completing prefers the one open task."""
    if len(tasks) <= 1:
        return tasks
    exact = [t for t in tasks if str(t.get("title", "")).casefold() == words.casefold()]
    if len(exact) == 1:
        return exact
    if tool == "complete_task":
        open_tasks = [t for t in tasks if t.get("status") != "completed"]
        if len(open_tasks) == 1:
            return open_tasks
    return tasks


def _after_lookup(intent: ToolIntent, outcome: ToolOutcome, today: date) -> Reply:
    """Continue a request that named its task by title, now that the matches are known."""
    if not outcome.payload.get("ok", False):
        return Reply(results_reply([outcome], today))
    words = (intent.target.words if intent.target else None) or ""
    matches = _pick(
        [t for t in outcome.payload.get("tasks") or [] if isinstance(t, dict)], words, intent.tool
    )
    if not matches:
        looser = loosen(words)
        if outcome.args.get("text") != looser:
            # One retry with word endings trimmed: "grocery" should find "Buy groceries".
            return _call("list_tasks", None, {"text": looser})
        return Reply(lookup_none_reply(intent.tool, words))
    if len(matches) > 1:
        return Reply(lookup_many_reply(intent.tool, words, matches, today))
    if _edits_tags(intent.args):
        return _tag_edit(intent, matches[0])
    return _call(intent.tool, str(matches[0].get("id")), intent.args)


def _batch_words(intent: BatchIntent) -> list[str]:
    """The title words of a batch's parts that name their task that way, in order."""
    return list(
        dict.fromkeys(i.target.words for i in intent.intents if i.target and i.target.words)
    )


def _is_batch_lookup(intent: BatchIntent, outcomes: list[ToolOutcome]) -> bool:
    """Whether the newest results are the look-ups of every title this batch named."""
    words = _batch_words(intent)
    return bool(words) and [(o.name, o.args.get("text")) for o in outcomes] == [
        ("list_tasks", w) for w in words
    ]


def _after_batch_lookup(intent: BatchIntent, outcomes: list[ToolOutcome], today: date) -> Reply:
    """Act on every task a batch named by title, or change none and say which was unclear."""
    found: dict[str, list[dict[str, Any]]] = {}
    for outcome in outcomes:
        if not outcome.payload.get("ok", False):
            return Reply(results_reply([outcome], today))
        tasks = [t for t in outcome.payload.get("tasks") or [] if isinstance(t, dict)]
        found[str(outcome.args.get("text"))] = tasks
    calls: list[tuple[str, dict[str, Any]]] = []
    problems: list[str] = []
    for part in intent.intents:
        words = part.target.words if part.target else None
        if not words:
            calls += _call(
                part.tool, part.target.task_id if part.target else None, part.args
            ).tool_calls
            continue
        matches = _pick(found.get(words, []), words, part.tool)
        if len(matches) == 1:
            calls.append((part.tool, {"task_id": str(matches[0].get("id"))} | part.args))
        elif matches:
            problems.append(lookup_many_reply(part.tool, words, matches, today))
        else:
            problems.append(lookup_none_reply(part.tool, words))
    if problems:
        return Reply(batch_lookup_reply(problems))
    return Reply(tool_calls=calls)


def plan_reply(messages: Sequence[BaseMessage], today: date, allowed: frozenset[str]) -> Reply:
    """Decide the engine's next message for a conversation."""
    user_index = next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)), None
    )
    if user_index is None:
        return Reply(text_reply(TextIntent("help")))
    last = messages[-1]
    if isinstance(last, AIMessage) and not last.tool_calls:
        return Reply("Is there anything else I can do for your tasks?")
    intent = _intent(messages, user_index, today)
    rounds, outcomes = _last_round(messages[user_index + 1 :])
    if rounds == 0 or not outcomes:
        return _start(intent, messages[:user_index], allowed, today)
    if isinstance(intent, UndoIntent):
        lost = [c for c in _last_changes(messages[:user_index], today) if _reversal(c) is None]
        done = results_reply(outcomes, today)
        if any(o.payload.get("ok") for o in outcomes):
            done = f"Undid your last change. {done}"
        return Reply(done + (f"\n{undo_lost_reply(lost)}" if lost else ""))
    if (
        rounds < _MAX_TOOL_ROUNDS
        and isinstance(intent, ToolIntent)
        and _is_lookup(intent, outcomes)
    ):
        if intent.tool not in allowed:
            return Reply(not_allowed_reply(intent.tool))
        return _after_lookup(intent, outcomes[0], today)
    if (
        rounds < _MAX_TOOL_ROUNDS
        and isinstance(intent, BatchIntent)
        and _is_batch_lookup(intent, outcomes)
    ):
        return _after_batch_lookup(intent, outcomes, today)
    if (
        rounds < _MAX_TOOL_ROUNDS
        and isinstance(intent, ToolIntent)
        and _edits_tags(intent.args)
        and [o.name for o in outcomes] == ["get_task"]
        and outcomes[0].payload.get("ok")
        and isinstance(task := outcomes[0].payload.get("task"), dict)
    ):
        return _tag_edit(intent, task)
    return Reply(results_reply(outcomes, today))
