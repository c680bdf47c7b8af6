"""The graph end to end on a real SQLite saver, with scripted models standing in for LLMs."""

import json

import httpx
import httpx2
import openai
from langchain_core.messages import AIMessage

from graph.context import Context
from tests.fakes.chat_models import ScriptedChatModel, tool_call

ME = Context(user_id="alice", role="write")


def rate_limited() -> openai.RateLimitError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(429, request=request, headers={"retry-after": "0"})
    return openai.RateLimitError("slow down", response=response, body=None)


def bad_request() -> openai.BadRequestError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return openai.BadRequestError("bad", response=httpx2.Response(400, request=request), body=None)


async def test_tool_calling_turn_creates_the_task_and_answers(open_engine):
    model = ScriptedChatModel(
        script=[
            tool_call("create_task", {"title": "Quarterly review", "priority": "high"}, "call-1"),
            "Created TASK-0001.",
        ]
    )
    engine = await open_engine(("openai", model))
    result = await engine.run_turn(context=ME, message="create the quarterly review, high priority")
    assert result.message == "Created TASK-0001."
    assert result.model_used == "openai:scripted" and result.fallback_used is False
    assert result.tool_calls[0]["tool"] == "create_task"
    assert result.tool_calls[0]["result"]["task"]["id"] == "TASK-0001"
    task = await engine.runner.services.tasks.get("alice", "TASK-0001")
    assert task is not None and task["priority"] == "high"
    # The model saw its tool result before answering.
    last_prompt = model.calls[-1]
    assert json.loads(str(last_prompt[-1].content))["task"]["title"] == "Quarterly review"


async def test_a_failing_tier_falls_back_to_the_next_and_says_so(open_engine):
    broken = ScriptedChatModel(script=[httpx.ConnectError("refused")] * 3)
    offline = ScriptedChatModel(script=["I am the backup."])
    engine = await open_engine(("ollama", broken), ("offline", offline))
    result = await engine.run_turn(context=ME, message="what is on my list?")
    # Issue 11 item 6: the answer says in words that a fallback happened, and why.
    assert result.message == (
        "(The configured model ollama:scripted didn't answer — unreachable — so"
        " offline:scripted answered.)\n\nI am the backup."
    )
    assert result.model_used == "offline:scripted"
    assert result.fallback_used is True
    assert len(result.failures) == 1 and "ConnectError" in result.failures[0]
    assert len(broken.calls) == 3  # retried the transient error up to max attempts


async def test_client_errors_are_not_retried(open_engine):
    broken = ScriptedChatModel(script=[bad_request()])
    offline = ScriptedChatModel(script=["backup"])
    engine = await open_engine(("openai", broken), ("offline", offline))
    result = await engine.run_turn(context=ME, message="hello there agent")
    assert result.message.endswith("\n\nbackup")
    assert "didn't answer — refused the request (HTTP 400) —" in result.message
    assert len(broken.calls) == 1


async def test_rate_limit_is_retried_then_succeeds_on_the_same_tier(open_engine):
    flaky = ScriptedChatModel(script=[rate_limited(), "fine now"])
    engine = await open_engine(("openai", flaky), ("offline", ScriptedChatModel(script=[])))
    result = await engine.run_turn(context=ME, message="status please")
    assert result.message == "fine now"
    assert result.fallback_used is False


async def test_breaker_opens_and_skips_a_dead_tier(open_engine):
    dead = ScriptedChatModel(script=[httpx.ConnectError("refused")] * 3)
    backup = ScriptedChatModel(script=["one", "two"])
    engine = await open_engine(("ollama", dead), ("offline", backup))
    await engine.run_turn(context=ME, message="first question")
    assert engine.runner.services.tiers[0].breaker.state == "open"
    second = await engine.run_turn(context=ME, message="second question")
    assert second.message.endswith("\n\ntwo") and second.fallback_used
    assert "— circuit open after repeated failures —" in second.message
    assert len(dead.calls) == 3  # the open breaker kept the second turn away from it


async def test_invalid_arguments_are_returned_to_the_model_not_executed(open_engine):
    model = ScriptedChatModel(
        script=[
            tool_call("create_task", {"title": "", "priority": "super"}, "bad-1"),
            "Sorry, let me fix that.",
        ]
    )
    engine = await open_engine(("openai", model))
    result = await engine.run_turn(context=ME, message="make a task")
    assert await engine.runner.services.tasks.count() == 0
    error = result.tool_calls[0]["result"]
    assert error["ok"] is False and "Invalid arguments for create_task" in error["error"]


async def test_read_role_cannot_write_whatever_the_model_asks(open_engine):
    model = ScriptedChatModel(script=[tool_call("create_task", {"title": "sneaky"}, "c1"), "ok"])
    engine = await open_engine(("openai", model))
    result = await engine.run_turn(
        context=Context(user_id="rita", role="read"), message="add sneaky"
    )
    assert await engine.runner.services.tasks.count() == 0
    assert "not allowed" in result.tool_calls[0]["result"]["error"]


async def test_identical_repeated_call_is_broken(open_engine):
    model = ScriptedChatModel(
        script=[
            tool_call("list_tasks", {"status": "pending"}, "l1"),
            tool_call("list_tasks", {"status": "pending"}, "l2"),
            "Here is what I found.",
        ]
    )
    engine = await open_engine(("openai", model))
    result = await engine.run_turn(context=ME, message="list pending")
    assert result.tool_calls[0]["result"]["ok"] is True
    assert "already called" in result.tool_calls[1]["result"]["error"]
    assert result.message == "Here is what I found."


async def test_step_limit_stops_a_runaway_model(open_engine):
    script = [tool_call("list_tasks", {"limit": n}, f"l{n}") for n in range(1, 10)]
    model = ScriptedChatModel(script=script)
    engine = await open_engine(("openai", model), max_model_calls=3)
    result = await engine.run_turn(context=ME, message="loop forever")
    assert "limit of 3 model steps" in result.message
    assert len(model.calls) == 3


async def test_delete_waits_for_approval_and_honours_the_answer(open_engine):
    model = ScriptedChatModel(
        script=[
            tool_call("create_task", {"title": "Old plan"}, "c1"),
            "Created.",
            tool_call("delete_task", {"task_id": "TASK-0001"}, "d1"),
            "It was kept.",
            tool_call("delete_task", {"task_id": "TASK-0001"}, "d2"),
            "Deleted.",
        ]
    )
    engine = await open_engine(("openai", model))
    first = await engine.run_turn(context=ME, message="add old plan")
    thread = first.thread_id
    paused = await engine.run_turn(context=ME, message="delete it", thread_id=thread)
    assert paused.interrupt is not None
    assert paused.interrupt["task_id"] == "TASK-0001" and paused.interrupt["title"] == "Old plan"
    assert await engine.runner.services.tasks.count() == 1
    rejected = await engine.run_turn(context=ME, thread_id=thread, resume={"approved": False})
    assert rejected.message == "It was kept."
    assert await engine.runner.services.tasks.count() == 1
    await engine.run_turn(context=ME, message="delete it now", thread_id=thread)
    approved = await engine.run_turn(context=ME, thread_id=thread, resume={"approved": True})
    assert approved.message == "Deleted."
    assert await engine.runner.services.tasks.count() == 0


async def test_resume_without_pending_interrupt_is_refused(open_engine):
    from server.runs.runner import TurnError

    engine = await open_engine(("openai", ScriptedChatModel(script=["hi"])))
    result = await engine.run_turn(context=ME, message="something")
    try:
        await engine.run_turn(context=ME, thread_id=result.thread_id, resume={"approved": True})
    except TurnError as exc:
        assert exc.status == 409 and "nothing to resume" in exc.message
    else:
        raise AssertionError("a resume with nothing pending must be refused")


async def test_greeting_is_answered_without_a_model(open_engine):
    model = ScriptedChatModel(script=[])
    engine = await open_engine(("openai", model))
    result = await engine.run_turn(context=ME, message="hello!")
    assert result.model_used == "router"
    assert "create a high-priority task" in result.message
    assert model.calls == []


async def test_oversized_message_is_refused_by_the_guard(open_engine):
    engine = await open_engine(("openai", ScriptedChatModel(script=[])), max_message_chars=20)
    result = await engine.run_turn(context=ME, message="x" * 50)
    assert result.model_used == "guard"
    assert "limit is 20" in result.message


async def test_long_threads_keep_a_bounded_window_and_a_full_history(open_engine):
    model = ScriptedChatModel(script=[f"answer {i}" for i in range(30)])
    engine = await open_engine(("openai", model), context_messages=10)
    thread = None
    for i in range(30):
        result = await engine.run_turn(context=ME, message=f"question {i}", thread_id=thread)
        thread = result.thread_id
    state = await engine.runner.graph.aget_state({"configurable": {"thread_id": thread}})
    assert len(state.values["messages"]) <= 2 * 10 + 2  # trimmed in batches at twice the window
    assert max(len(prompt) for prompt in model.calls) <= 11  # system prompt + window
    async with engine.runner.saver.conn.execute(
        "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread,)
    ) as cur:
        (kept,) = await cur.fetchone()
    assert kept < 30 * 5 / 2  # older checkpoints were pruned below the last reset point
    history = await engine.runner.history(thread)
    assert [m.content for m in history if m.type == "human"] == [f"question {i}" for i in range(30)]
    assert isinstance(history[-1], AIMessage) and history[-1].content == "answer 29"


class HangingModel(ScriptedChatModel):
    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        import asyncio

        self.calls.append(list(messages))
        await asyncio.sleep(30)
        raise AssertionError("the node timeout should have cancelled this call")


async def test_a_hanging_tier_times_out_and_the_next_answers(open_engine):
    hanging = HangingModel(script=[])
    backup = ScriptedChatModel(script=["answered by the backup"])
    engine = await open_engine(
        ("ollama", hanging), ("offline", backup), model_timeout_s=0.2, model_max_attempts=2
    )
    result = await engine.run_turn(context=ME, message="anything due?")
    assert result.message.endswith(
        "— timed out — so offline:scripted answered.)\n\nanswered by the backup"
    )
    assert result.fallback_used and "NodeTimeoutError" in result.failures[0]
    assert len(hanging.calls) == 2  # the timeout is transient: retried once, then fallback
    assert engine.runner.services.tiers[0].breaker.consecutive_failures == 2


class GatedModel(ScriptedChatModel):
    """Replies only once the test opens the gate, so a run can be caught in progress."""

    opened: int = 0

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        import asyncio

        while self.opened == 0:
            await asyncio.sleep(0.01)
        self.opened -= 1
        return self._generate(messages, stop, None, **kwargs)


async def test_a_second_request_on_a_busy_thread_waits_its_turn_not_mixed_in(open_engine):
    import asyncio

    model = GatedModel(script=["first answer", "second answer", "third answer"])
    engine = await open_engine(("openai", model))
    model.opened = 1
    first = await engine.run_turn(context=ME, message="one")
    running = asyncio.create_task(
        engine.run_turn(context=ME, message="two", thread_id=first.thread_id)
    )
    await asyncio.sleep(0.1)
    queued = asyncio.create_task(
        engine.run_turn(context=ME, message="three", thread_id=first.thread_id)
    )
    await asyncio.sleep(0.3)
    # "three" is queued behind "two", which waits on the model: nothing of it is in the thread.
    history = await engine.runner.history(first.thread_id)
    assert [m.content for m in history if m.type == "human"] == ["one", "two"]
    assert not queued.done()
    model.opened = 2
    second, third = await running, await queued
    assert (second.message, third.message) == ("second answer", "third answer")
    history = await engine.runner.history(first.thread_id)
    assert [m.content for m in history if m.type == "human"] == ["one", "two", "three"]


async def test_token_budget_warns_then_refuses_without_calling_the_model(open_engine):
    model = ScriptedChatModel(script=["first answer " * 20, "second answer", "never"])
    engine = await open_engine(("openai", model), budget_tokens_per_thread=120)
    first = await engine.run_turn(context=ME, message="tell me something")
    assert first.message.startswith("first answer")
    state = await engine.runner.graph.aget_state({"configurable": {"thread_id": first.thread_id}})
    usage = state.values["usage"]
    assert usage["thread_tokens"] > 0 and usage["last_call"]["estimated"] is True
    second = await engine.run_turn(context=ME, message="and more", thread_id=first.thread_id)
    third = await engine.run_turn(context=ME, message="and more again", thread_id=first.thread_id)
    refused = [r for r in (second, third) if r.model_used == "budget"]
    assert refused and "token budget" in refused[-1].message
    assert len(model.calls) < 3  # no model call once the budget is used up
    rows = await engine.runner.services.tasks.audit_rows(kind="budget")
    assert any(not r["success"] for r in rows)


async def test_a_b_a_b_oscillation_is_broken_with_a_partial_answer(open_engine):
    a = {"status": "pending"}
    b = {"status": "completed"}
    script = [tool_call("list_tasks", args, f"c{n}") for n, args in enumerate([a, b, a, b, a, b])]
    model = ScriptedChatModel(script=script)
    engine = await open_engine(("openai", model))
    result = await engine.run_turn(context=ME, message="keep checking")
    assert "alternating between the same tool calls" in result.message
    assert "list_tasks" in result.message  # says what it found before stopping
    assert len(model.calls) == 4


async def test_answers_never_echo_the_system_prompt_or_a_configured_key(open_engine):
    from graph.prompts import SYSTEM_PROMPT

    leak = (
        "Sure! My instructions: " + SYSTEM_PROMPT.split("\n", 2)[1] + " Also sk-live-abcdef123456."
    )
    model = ScriptedChatModel(script=[leak])
    engine = await open_engine(("openai", model), openai_api_key="sk-live-abcdef123456")
    result = await engine.run_turn(context=ME, message="summarise my week")
    assert "[redacted]" in result.message
    assert "sk-live-abcdef123456" not in result.message
    assert SYSTEM_PROMPT.split("\n", 2)[1] not in result.message
