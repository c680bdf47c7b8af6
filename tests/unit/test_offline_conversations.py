"""Conversations with the offline engine through the real compiled graph and SQLite store.

Each test talks to the agent the way a newcomer would and is judged from the task database
(and, for reads, from what the user is told).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from graph.context import Context
from models.offline import OfflineChatModel, plan_reply
from tools.schemas import TOOL_ARGS

ME = Context(user_id="alice", role="write")


class Chat:
    """One thread with the offline engine; approvals are answered as the test says."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.thread: str | None = None
        self.asked: list[dict[str, Any]] = []

    async def say(self, message: str, approve: bool = True) -> str:
        result = await self.engine.run_turn(context=ME, message=message, thread_id=self.thread)
        self.thread = result.thread_id
        while result.interrupt is not None:
            self.asked.append(result.interrupt)
            result = await self.engine.run_turn(
                context=ME, thread_id=self.thread, resume={"approved": approve}
            )
        return str(result.message)

    async def tasks(self) -> dict[str, dict[str, Any]]:
        return {t["id"]: t for t in await self.engine.runner.services.tasks.find("alice")}

    async def titles(self) -> list[str]:
        return [t["title"] for t in (await self.tasks()).values()]


async def chat(open_engine: Any) -> Chat:
    return Chat(await open_engine(("offline", OfflineChatModel())))


async def test_several_ids_in_one_message_change_every_task(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add milk, eggs and bread")
    assert await talk.titles() == ["Milk", "Eggs", "Bread"]
    answer = await talk.say("mark TASK-0002 and TASK-0003 done")
    tasks = await talk.tasks()
    assert [tasks[i]["status"] for i in ("TASK-0001", "TASK-0002", "TASK-0003")] == [
        "pending",
        "completed",
        "completed",
    ]
    assert "TASK-0002" in answer and "TASK-0003" in answer
    await talk.say("set 1 and 3 to urgent")
    tasks = await talk.tasks()
    assert [t["priority"] for t in tasks.values()] == ["urgent", "normal", "urgent"]


async def test_deleting_several_ids_asks_for_each_and_deletes_each(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("create tasks: call the bank; renew passport; book flights")
    await talk.say("delete 1 and 3")
    assert [a["task_id"] for a in talk.asked] == ["TASK-0001", "TASK-0003"]
    assert await talk.titles() == ["Renew passport"]


async def test_an_id_mixed_with_title_words_changes_nothing(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add these tasks: write report, call mom")
    answer = await talk.say("mark TASK-0001 and the mom task done")
    assert "haven't changed anything" in answer
    assert [t["status"] for t in (await talk.tasks()).values()] == ["pending", "pending"]


async def test_titles_are_clean(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add Book dentist appointment , low prio")
    await talk.say("add team lunch for Friday at noon")
    await talk.say("add pay rent by friday please")
    tasks = list((await talk.tasks()).values())
    assert [t["title"] for t in tasks] == [
        "Team lunch at noon",
        "Pay rent",
        "Book dentist appointment",
    ]
    assert tasks[2]["priority"] == "low"
    friday = date.today() + timedelta(days=(4 - date.today().weekday() - 1) % 7 + 1)
    assert tasks[0]["due_date"] == tasks[1]["due_date"] == friday.isoformat()


async def test_two_tasks_with_their_own_dates_in_one_message(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("remind me to call mom tomorrow and pay rent on friday")
    tasks = {t["title"]: t["due_date"] for t in (await talk.tasks()).values()}
    friday = date.today() + timedelta(days=(4 - date.today().weekday() - 1) % 7 + 1)
    tomorrow = date.today() + timedelta(days=1)
    assert tasks == {"Call mom": tomorrow.isoformat(), "Pay rent": friday.isoformat()}


async def test_a_bare_task_line_is_offered_and_added_on_yes(open_engine: Any) -> None:
    talk = await chat(open_engine)
    answer = await talk.say("Book dentist appointment, low prio")
    assert "Should I add it as a task?" in answer
    assert await talk.tasks() == {}
    await talk.say("yes")
    (task,) = (await talk.tasks()).values()
    assert (task["title"], task["priority"]) == ("Book dentist appointment", "low")


async def test_it_after_a_create_is_the_task_just_created(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add water the plants")
    await talk.say("add call mom tomorrow")
    await talk.say("make it urgent")
    tasks = await talk.tasks()
    assert tasks["TASK-0002"]["priority"] == "urgent"
    assert tasks["TASK-0001"]["priority"] == "normal"
    await talk.say("delete it")
    assert await talk.titles() == ["Water the plants"]


async def test_it_after_creating_several_asks_which_one(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add milk, eggs and bread")
    answer = await talk.say("make it urgent")
    assert "Which task do you mean?" in answer
    assert {t["priority"] for t in (await talk.tasks()).values()} == {"normal"}
    await talk.say("2")
    assert [t["priority"] for t in (await talk.tasks()).values()] == ["normal", "urgent", "normal"]


async def test_undo_a_create_deletes_it_after_approval(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add buy milk")
    await talk.say("add call mom")
    await talk.say("undo that", approve=False)
    assert await talk.titles() == ["Buy milk", "Call mom"]
    answer = await talk.say("undo")
    assert [a["task_id"] for a in talk.asked] == ["TASK-0002", "TASK-0002"]
    assert await talk.titles() == ["Buy milk"]
    assert answer.startswith("Undid your last change.")


async def test_undo_an_update_restores_every_previous_value(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add file taxes")
    await talk.say("set TASK-0001 to urgent")
    await talk.say("move it to tomorrow")
    assert (await talk.tasks())["TASK-0001"]["due_date"] is not None
    await talk.say("undo")
    task = (await talk.tasks())["TASK-0001"]
    assert (task["priority"], task["due_date"]) == ("urgent", None)
    await talk.say("undo")  # the undo before it is undone too: one step further back
    task = (await talk.tasks())["TASK-0001"]
    assert (task["priority"], task["due_date"]) == ("normal", None)


async def test_undo_a_completion_restores_the_previous_status(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add write report")
    await talk.say("start TASK-0001")
    await talk.say("mark it done")
    assert (await talk.tasks())["TASK-0001"]["status"] == "completed"
    await talk.say("undo that")
    assert (await talk.tasks())["TASK-0001"]["status"] == "in_progress"


async def test_undo_a_several_task_change_reverses_all_of_it(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add milk, eggs and bread")
    await talk.say("complete 1 and 3")
    assert [t["status"] for t in (await talk.tasks()).values()] == [
        "completed",
        "pending",
        "completed",
    ]
    await talk.say("undo")
    assert {t["status"] for t in (await talk.tasks()).values()} == {"pending"}


async def test_undo_a_deletion_says_it_cannot(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add old plan")
    await talk.say("delete TASK-0001")
    assert await talk.tasks() == {}
    answer = await talk.say("undo")
    assert "can't undo a deletion" in answer and '"Old plan"' in answer
    assert await talk.tasks() == {}


async def test_undo_with_nothing_changed_says_so(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("list my tasks")
    answer = await talk.say("undo")
    assert "nothing to undo" in answer
    assert await talk.tasks() == {}


async def test_vague_and_ranged_reads_find_the_right_tasks(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add renew passport urgent")
    await talk.say("add water the plants #home in 3 days")
    await talk.say("add file taxes #work in 10 days")
    await talk.say("add pay the old bill due 2026-01-05")
    urgent = await talk.say("any urgent stuff?")
    assert "Renew passport" in urgent and "Water the plants" not in urgent
    overdue = await talk.say("is anything overdue?")
    assert "Pay the old bill" in overdue and "File taxes" not in overdue
    week = await talk.say("what's due in the next 7 days?")
    assert "Water the plants" in week and "File taxes" not in week
    home = await talk.say("show tasks tagged home")
    assert "Water the plants" in home and "File taxes" not in home
    assert "#home" in home


async def test_typos_are_understood(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("creat a tsk to call mom")
    await talk.say("add pay rent")
    await talk.say("complte task 2")
    tasks = await talk.tasks()
    assert tasks["TASK-0001"]["title"] == "Call mom"
    assert tasks["TASK-0002"]["status"] == "completed"
    await talk.say("delte task 1")
    assert await talk.titles() == ["Pay rent"]


async def test_thanks_thats_all_closes_politely(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add call mom")
    answer = await talk.say("thanks, that's all")
    assert "Bye" in answer
    assert await talk.titles() == ["Call mom"]


async def test_the_second_one_is_the_second_task_just_listed(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add 3 tasks: laundry, dishes, vacuum")
    await talk.say("list my tasks")
    await talk.say("mark the second one done")
    statuses = {t["title"]: t["status"] for t in (await talk.tasks()).values()}
    assert statuses == {"Laundry": "pending", "Dishes": "completed", "Vacuum": "pending"}
    answer = await talk.say("delete the fifth one")
    assert "Which task do you mean?" in answer
    assert len(await talk.tasks()) == 3


async def test_actually_make_that_changes_the_task_just_created(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add renew passport")
    await talk.say("add book flights")
    await talk.say("actually, make that high priority")
    priorities = {t["title"]: t["priority"] for t in (await talk.tasks()).values()}
    assert priorities == {"Renew passport": "normal", "Book flights": "high"}


def test_calls_naming_the_task_with_the_newer_task_key_count_for_it() -> None:
    history = [
        HumanMessage("show the report task"),
        AIMessage("", tool_calls=[{"name": "get_task", "args": {"task": "TASK-0005"}, "id": "c1"}]),
        ToolMessage('{"ok": false, "error": "timed out"}', tool_call_id="c1"),
        AIMessage("I couldn't do that: timed out"),
        HumanMessage("delete it"),
    ]
    reply = plan_reply(history, date(2026, 11, 22), frozenset(TOOL_ARGS))
    assert reply.tool_calls == [("delete_task", {"task_id": "TASK-0005"})]


async def test_tags_are_added_and_removed_one_at_a_time(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add write report #work")
    await talk.say("add tag q4 to task 1")
    assert (await talk.tasks())["TASK-0001"]["tags"] == ["work", "q4"]
    await talk.say("remove the tag work from the report")
    assert (await talk.tasks())["TASK-0001"]["tags"] == ["q4"]
    answer = await talk.say("remove the tag home from task 1")
    assert "doesn't have that tag" in answer
    assert (await talk.tasks())["TASK-0001"]["tags"] == ["q4"]
    await talk.say("undo")  # the last change that happened: #work removed
    assert (await talk.tasks())["TASK-0001"]["tags"] == ["work", "q4"]


async def test_clearing_a_due_date_and_asking_about_one_task(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add dentist appointment tomorrow")
    answer = await talk.say("when is the dentist due?")
    assert "Dentist appointment" in answer
    await talk.say("remove the due date from TASK-0001")
    assert (await talk.tasks())["TASK-0001"]["due_date"] is None
    await talk.say("the dentist appointment should be urgent")
    assert (await talk.tasks())["TASK-0001"]["priority"] == "urgent"


async def test_several_tasks_named_by_title_are_each_looked_up_and_changed(
    open_engine: Any,
) -> None:
    talk = await chat(open_engine)
    await talk.say("create tasks 'do the laundry' and 'wash the dishes'")
    await talk.say("add pay rent")
    assert await talk.titles() == ["Do the laundry", "Wash the dishes", "Pay rent"]
    answer = await talk.say("I finished the laundry and the dishes")
    statuses = [t["status"] for t in (await talk.tasks()).values()]
    assert statuses == ["completed", "completed", "pending"]
    assert "TASK-0001" in answer and "TASK-0002" in answer


async def test_several_titles_with_one_unknown_change_nothing(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add do the laundry")
    answer = await talk.say("mark the laundry and the garage as done")
    assert 'couldn\'t find a task matching "garage"' in answer
    assert "haven't changed any" in answer
    assert [t["status"] for t in (await talk.tasks()).values()] == ["pending"]


async def test_a_reason_after_the_task_and_a_date_for_it(open_engine: Any) -> None:
    talk = await chat(open_engine)
    await talk.say("add do the laundry")
    await talk.say("add call the bank")
    await talk.say("it's due tomorrow")
    await talk.say("the laundry isn't important, make it low priority")
    tasks = await talk.tasks()
    assert tasks["TASK-0002"]["due_date"] == (date.today() + timedelta(days=1)).isoformat()
    assert tasks["TASK-0001"]["priority"] == "low"
    await talk.say("delete the laundry task, it's done anyway")
    assert talk.asked[-1]["task_id"] == "TASK-0001"
    assert await talk.titles() == ["Call the bank"]
