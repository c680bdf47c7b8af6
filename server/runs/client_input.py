"""What an agent-protocol client may send as a run's `input` and `command`: user messages only.

The graph trusts what its state holds: system prompts, the model's tool calls and the tool
results it was given. A client that could write those would forge them, so a run's input
is read as user messages alone, each checked like a `/chat` message, and rebuilt here as
`HumanMessage`s with ids of our own (a client-chosen id could replace an earlier message).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from langchain_core.messages import HumanMessage

from graph.settings import Settings
from nodes.guard_input import check_message

USER_ROLES = frozenset({"user", "human"})
# Keys a serialised LangChain HumanMessage carries; the extras must be empty.
_MESSAGE_KEYS = frozenset({"role", "type", "content", "id", "name"})
_EMPTY_EXTRAS = frozenset({"additional_kwargs", "response_metadata", "example"})
_FORGED_KEYS = frozenset({"tool_calls", "invalid_tool_calls", "tool_call_id", "function_call"})
_COMMAND_KEYS = frozenset({"resume", "update", "goto"})
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class RefusedInput(ValueError):
    """A run request carries what a client may not send; its text is the 422 sentence."""


def _refuse(sentence: str) -> RefusedInput:
    return RefusedInput(sentence)


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _refuse(f"{where}.content must be text or a list of text parts.")
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif (
            isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ):
            texts.append(part["text"])
        else:
            raise _refuse(f"{where}.content may hold only text parts ({{'type': 'text'}}).")
    return "".join(texts)


def _message_text(message: Any, where: str) -> str:
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        raise _refuse(f"{where} must be a string or a message object with role and content.")
    forged = sorted(message.keys() & _FORGED_KEYS)
    if forged:
        raise _refuse(
            f"{where} carries {', '.join(forged)}: tool calls and their results come from "
            "the model and the tools, never from a client."
        )
    roles = [message[key] for key in ("role", "type") if key in message]
    wrong = [r for r in roles if not (isinstance(r, str) and r in USER_ROLES)]
    if wrong or not roles:
        found = f"role {repr(wrong[0])[:40]}" if wrong else "no role"
        raise _refuse(
            f"{where} has {found}: a client may send only user messages "
            "(role 'user' or 'human'); system, assistant and tool messages are refused."
        )
    unknown = sorted(message.keys() - _MESSAGE_KEYS - _EMPTY_EXTRAS)
    if unknown:
        raise _refuse(f"{where} has unknown fields: {', '.join(map(str, unknown))}.")
    if any(message.get(key) for key in _EMPTY_EXTRAS):
        raise _refuse(f"{where}: additional_kwargs, response_metadata and example must be empty.")
    if "content" not in message:
        raise _refuse(f"{where} has no content.")
    return _content_text(message["content"], where)


def user_messages(raw_input: Any, settings: Settings) -> list[HumanMessage]:
    """Return a run's `input` as new user messages, or raise `RefusedInput` naming the fault.

    Accepted: `{"messages": [...]}` where each message is a string, `{"role": "user" |
    "human", "content": ...}` or `{"type": "human", "content": ...}`, content being text
    or text parts. At most `TASKAGENT_MAX_INPUT_MESSAGES` messages, each passing the
    `/chat` size and character checks. Anything else is refused: other roles, tool calls,
    tool results, other input keys.
    """
    max_messages = settings.max_input_messages
    if not isinstance(raw_input, dict):
        raise _refuse('input must be an object like {"messages": [{"role": "user", ...}]}.')
    unknown = sorted(map(str, raw_input.keys() - {"messages"}))
    if unknown:
        raise _refuse(f"input may hold only messages; refused: {', '.join(unknown)}.")
    messages = raw_input.get("messages")
    if isinstance(messages, str | dict):
        messages = [messages]
    if not isinstance(messages, list) or not messages:
        raise _refuse("input.messages must be a non-empty list of user messages.")
    if len(messages) > max_messages:
        raise _refuse(
            f"input.messages has {len(messages)} messages; the limit is {max_messages} per run."
        )
    built: list[HumanMessage] = []
    for index, message in enumerate(messages):
        where = f"input.messages[{index}]"
        text = _message_text(message, where)
        verdict = check_message(text, settings.max_message_chars)
        if not verdict.allowed:
            raise _refuse(f"{where}: {verdict.reason}")
        built.append(HumanMessage(content=text, id=_client_id(message)))
    return built


def _client_id(message: Any) -> str:
    """The id the client gave the message (its chat UI matches its copy by it), or a new one.

    The run keeps it only if no message of the thread has it yet (`fresh_ids`): an existing id
    would replace that message in the state.
    """
    given = message.get("id") if isinstance(message, dict) else None
    if isinstance(given, str) and _CLIENT_ID.fullmatch(given):
        return given
    return str(uuid.uuid4())


def fresh_ids(messages: list[HumanMessage], taken: set[str]) -> list[HumanMessage]:
    """The messages, each whose id is already in the thread given a new one."""
    return [
        m.model_copy(update={"id": str(uuid.uuid4())}) if m.id in taken else m for m in messages
    ]


def check_run_request(raw_input: Any, command: dict[str, Any] | None, settings: Settings) -> None:
    """Raise `RefusedInput` for a run request whose `input` or `command` a client may not send.

    `command` may carry only `resume` (`update` and `goto` would write state or jump
    past the guards, so they must be absent or null).
    """
    if command is not None:
        if "resume" not in command:
            raise _refuse("Only command.resume is supported.")
        extra = sorted(
            str(key)
            for key, value in command.items()
            if key != "resume" and (key not in _COMMAND_KEYS or value is not None)
        )
        if extra:
            raise _refuse(f"command may hold only resume; refused: {', '.join(extra)}.")
        if raw_input is None or raw_input == {}:
            return
    user_messages(raw_input, settings)
