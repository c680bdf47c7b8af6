"""Checkpoint reads and step writes do not wait for the saver's lock; turns see each other."""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, HumanMessage

from graph.saver_pool import PooledSaver
from tests.fakes.chat_models import ScriptedChatModel, tool_call
from tests.unit.test_graph import ME


async def test_a_threads_state_is_read_while_the_writer_is_busy(open_engine):
    model = ScriptedChatModel(
        script=[
            tool_call("create_task", {"title": "Call the plumber"}, "call-1"),
            "Created TASK-0001.",
        ]
    )
    engine = await open_engine(("openai", model))
    assert isinstance(engine.runner.saver, PooledSaver)
    result = await engine.run_turn(context=ME, message="create a task to call the plumber")
    config = {"configurable": {"thread_id": result.thread_id}}
    # The writer's lock is held (a long prune, a write of another thread's step): before,
    # every read queued behind it; now reads go to their own connection.
    async with engine.runner.saver.lock:
        state = await asyncio.wait_for(engine.runner.graph.aget_state(config), 2.0)
        history = await asyncio.wait_for(
            _collect(engine.runner.graph.aget_state_history(config, limit=3)), 2.0
        )
    messages = state.values["messages"]
    assert isinstance(messages[0], HumanMessage)
    assert isinstance(messages[-1], AIMessage) and messages[-1].text == "Created TASK-0001."
    assert len(history) == 3 and history[0].config == state.config


async def test_a_turn_runs_to_its_end_while_the_savers_lock_is_held(open_engine):
    model = ScriptedChatModel(
        script=[tool_call("create_task", {"title": "Renew the insurance"}, "call-1"), "Done."]
    )
    engine = await open_engine(("openai", model))
    # Every step's checkpoint used to take this lock: the turn would hang behind the holder.
    async with engine.runner.saver.lock:
        turn = asyncio.create_task(
            engine.run_turn(context=ME, message="create a task to renew the insurance")
        )
        done, _ = await asyncio.wait({turn}, timeout=5.0)
    result = await turn
    assert turn in done, "the turn waited for the saver's lock"
    assert result.message == "Done."
    assert await engine.runner.services.tasks.get("alice", "TASK-0001") is not None
    state = await engine.runner.graph.aget_state({"configurable": {"thread_id": result.thread_id}})
    assert state.values["messages"][-1].text == "Done."


async def test_the_next_turn_reads_what_the_last_one_wrote(open_engine):
    model = ScriptedChatModel(script=["First answer.", "Second answer."])
    engine = await open_engine(("openai", model))
    first = await engine.run_turn(context=ME, message="tell me something about my week")
    second = await engine.run_turn(
        context=ME, message="and something else about it", thread_id=first.thread_id
    )
    assert second.message == "Second answer."
    state = await engine.runner.graph.aget_state({"configurable": {"thread_id": first.thread_id}})
    texts = [m.text for m in state.values["messages"]]
    assert texts == [
        "tell me something about my week",
        "First answer.",
        "and something else about it",
        "Second answer.",
    ]
    # The model's second call saw the whole thread: its reads found the first turn's writes.
    assert [m.text for m in model.calls[-1] if not m.type == "system"][:2] == texts[:2]


async def _collect(items):
    return [item async for item in items]
