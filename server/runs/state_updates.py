"""What a client may write into the task agent's state with `update_state` (and a fork).

The task agent's guards live in its nodes: `guard_input` reads each new user message,
`guard_tools` authorizes, validates and asks approval for every tool call the model proposes,
and `tool_execute` runs only the calls `guard_tools` put in `pending_calls`. An update that
wrote `pending_calls` (or spoke as `guard_tools`) would send calls to `tool_execute` that no
guard saw, and the other bookkeeping keys (budgets, verdicts, executed calls) are the graph's
own. So a client may write messages only: user messages (checked as guard_input checks a
turn) and the model's text. Tool calls and their results are the graph's, as they are for a
run's input (`server.runs.client_input`): an AI message carrying tool calls, a tool or system
message, or a message replacing one that is part of a tool call, is refused. What a user
wants done is asked for in a user message; the model's calls for it then pass `guard_tools`,
and a delete waits for the user's approval. An update or a fork at a checkpoint whose
approved calls wait for `tool_execute` is refused too.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    convert_to_messages,
)
from langgraph.types import StateSnapshot

from graph.settings import Settings
from nodes.guard_input import check_turn

GUARDED_NODE = "guard_tools"
EXECUTING_NODE = "tool_execute"
WRITABLE_KEYS = frozenset({"messages"})
COPY = "__copy__"


class RefusedUpdate(ValueError):
    """An update the task agent's state does not take; its text is the 4xx sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def holds_approved_calls(snapshot: StateSnapshot) -> bool:
    """Whether the task agent's state at this checkpoint has approved calls waiting to run.

    Going on from such a checkpoint in a new branch (a fork, an update, a run started from
    it) would run calls that `guard_tools` approved in another timeline.
    """
    return EXECUTING_NODE in snapshot.next


def check_task_agent_update(
    values: Any, as_node: str | None, source: StateSnapshot, settings: Settings
) -> None:
    """Raise RefusedUpdate unless writing `values` as `as_node` at `source` keeps every guard.

    `source` is the state at the checkpoint the update starts from. A fork (`__copy__`)
    copies that checkpoint as it is; with a list of `[values, as_node]` pairs, each pair
    is checked like a single update.
    """
    if holds_approved_calls(source):
        # A fork or an update here would run calls approved in another timeline.
        raise RefusedUpdate(
            409,
            "This checkpoint holds approved tool calls waiting to run; fork or update the"
            " checkpoint before it, and guard_tools asks again.",
        )
    if as_node == COPY:
        if values is None:
            return
        if not isinstance(values, list):
            raise RefusedUpdate(
                422, "A __copy__ update takes no values or a list of [values, as_node] pairs."
            )
        for item in values:
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise RefusedUpdate(422, "A __copy__ update's values are [values, as_node] pairs.")
            if item[1] == COPY:
                raise RefusedUpdate(422, "A __copy__ update cannot nest another __copy__.")
            check_task_agent_update(item[0], item[1], source, settings)
        return
    if as_node == GUARDED_NODE:
        raise RefusedUpdate(
            422,
            "The task agent's guard_tools decides which tool calls run; write the model's"
            " tool calls as_node model_call and guard_tools checks them.",
        )
    if values is None:
        return
    if not isinstance(values, dict):
        raise RefusedUpdate(422, 'The task agent\'s state is an object like {"messages": [...]}.')
    refused = sorted(map(str, values.keys() - WRITABLE_KEYS))
    if refused:
        raise RefusedUpdate(
            422,
            f"Only messages are writable in the task agent's state; refused: {', '.join(refused)}"
            " (the graph keeps these itself).",
        )
    if "messages" in values:
        _check_messages(values["messages"], source, settings)


def _check_messages(raw: Any, source: StateSnapshot, settings: Settings) -> None:
    listed = raw if isinstance(raw, list) else [raw]
    if len(listed) > settings.max_input_messages:
        raise RefusedUpdate(
            422,
            f"values.messages has {len(listed)} messages; the limit is"
            f" {settings.max_input_messages} per update.",
        )
    try:
        messages = convert_to_messages(listed)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise RefusedUpdate(422, f"values.messages is not a list of messages: {exc}") from None
    existing = {m.id: m for m in source.values.get("messages", []) if m.id}
    for index, message in enumerate(messages):
        where = f"values.messages[{index}]"
        if not isinstance(message, HumanMessage | AIMessage | RemoveMessage):
            raise RefusedUpdate(
                422,
                f"{where} is a {message.type} message: tool results come from the tools and"
                " the system prompt from the server; write human or ai messages.",
            )
        if isinstance(message, AIMessage) and (message.tool_calls or message.invalid_tool_calls):
            raise RefusedUpdate(
                422,
                f"{where} carries tool calls: tool calls come from the model and pass"
                " guard_tools, never from a client; ask for the change in a user message.",
            )
        replaced = existing.get(message.id)
        if replaced is not None and (
            not isinstance(replaced, HumanMessage | AIMessage)
            or (isinstance(replaced, AIMessage) and replaced.tool_calls)
        ):
            raise RefusedUpdate(
                422,
                f"{where} would replace a {replaced.type} message that is part of a tool"
                " call and its result, which are the graph's.",
            )
        _check_size(message, where, settings)


def _check_size(message: BaseMessage, where: str, settings: Settings) -> None:
    limit = settings.max_message_chars
    if isinstance(message, HumanMessage):
        # Written as any node, a user message may never pass guard_input: it is checked here
        # as guard_input checks a turn (size, characters, clear prompt injection).
        verdict = check_turn([message], limit)
        if not verdict.allowed:
            raise RefusedUpdate(422, f"{where}: {verdict.reason}")
        return
    text = message.text
    if len(text) > limit:
        raise RefusedUpdate(422, f"{where} has {len(text)} characters; the limit is {limit}.")
