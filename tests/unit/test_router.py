"""The router answers bare thanks itself; anything with a request in it reaches the agent."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from graph.context import Context
from models.offline import OfflineChatModel
from nodes.router import THANKS_REPLY

ME = Context(user_id="alice", role="write")


@pytest.mark.parametrize(
    ("said", "title"),
    [
        ("thanks, add milk", "Milk"),
        ("thank you! add a task to call the bank", "Call the bank"),
        ("cheers, remind me to water the plants", "Water the plants"),
    ],
)
async def test_thanks_with_a_request_goes_to_the_agent(
    open_engine: Any, said: str, title: str
) -> None:
    engine = await open_engine(("offline", OfflineChatModel()))
    result = await engine.run_turn(context=ME, message=said)
    assert result.message != THANKS_REPLY and result.model_used != "router"
    assert [t["title"] for t in await engine.runner.services.tasks.find("alice")] == [title]


@pytest.mark.parametrize("said", ["thanks", "Thank you so much!", "great, thanks", "thx"])
async def test_bare_thanks_is_answered_directly(open_engine: Any, said: str) -> None:
    engine = await open_engine(("offline", OfflineChatModel()))
    result = await engine.run_turn(context=ME, message=said)
    assert (result.message, result.model_used) == (THANKS_REPLY, "router")
    assert await engine.runner.services.tasks.find("alice") == []


async def test_bare_thanks_sent_as_content_blocks_is_answered_directly(open_engine: Any) -> None:
    # Studio and the SDK send a message as a list of content blocks, not a string.
    engine = await open_engine(("offline", OfflineChatModel()))
    said = HumanMessage(content=[{"type": "text", "text": "thanks"}])
    config: Any = {"configurable": {"thread_id": "blocks"}}
    state = await engine.runner.graph.ainvoke({"messages": [said]}, config, context=ME)
    answer = state["messages"][-1]
    assert (answer.text, answer.response_metadata["model_used"]) == (THANKS_REPLY, "router")
