"""A fake OpenAI-compatible model that obeys prompt injections: the worst case for the agent.

It is taught, per user message, the tool calls an attacker wants (`teach`). When a chat
request's newest message is a taught user message, it answers with exactly those calls,
whatever tools the client offered; when the newest message is a tool result (or a denial),
it answers with a short text, so every turn ends. Replies derive from the request alone,
so any number of concurrent turns can share one server.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tests.fakes.llm_servers import (
    Behaviour,
    FakeOpenAIServer,
    RecordedRequest,
    Reply,
    _Handler,
)

AFTER_TOOL = "Done."
UNTAUGHT = "ok"


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class ObedientOpenAIServer(FakeOpenAIServer):
    """Answers each taught user message with its tool calls; never refuses anything."""

    model_name = "obedient"

    def __init__(self) -> None:
        super().__init__()
        self._orders: dict[str, Reply] = {}
        self._orders_lock = threading.Lock()
        self.obeyed: dict[str, int] = {}

    def teach(self, message: str, calls: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Answer `message` (the user's words, exactly) with `calls` from now on."""
        reply = Reply(calls=tuple((name, dict(args)) for name, args in calls))
        with self._orders_lock:
            self._orders[message] = reply

    def behaviour_for(self, body: Any) -> Behaviour:
        """The reply to one chat request, from its newest message."""
        messages = body.get("messages", []) if isinstance(body, dict) else []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return Reply(content=AFTER_TOOL)
        if last.get("role") == "user":
            text = _content(last)
            with self._orders_lock:
                reply = self._orders.get(text)
                if reply is not None:
                    self.obeyed[text] = self.obeyed.get(text, 0) + 1
            if reply is not None:
                return reply
        return Reply(content=UNTAUGHT)

    def _handle(self, handler: _Handler, request: RecordedRequest) -> None:
        if request.path == self.chat_path and request.method == "POST":
            body = request.body if isinstance(request.body, dict) else {}
            behaviour = self.behaviour_for(body)
            request.behaviour = behaviour
            assert isinstance(behaviour, Reply)
            self._chat(handler, body, behaviour)
            return
        super()._handle(handler, request)
