"""The eval's judge on its own: snapshots in, verdicts out (no server)."""

from datetime import date

import pytest

from evals.cases import load_cases, parse_case, resolve_due
from evals.judge import diff, false_claims, judge

MONDAY = date(2026, 12, 7)


def task(title, priority="normal", status="pending", due_date=None, tags=()):
    return {
        "title": title,
        "description": "",
        "priority": priority,
        "status": status,
        "due_date": due_date,
        "tags": sorted(tags),
    }


SEEDS = {"rent": "TASK-0001", "gym": "TASK-0002"}
BEFORE = {"TASK-0001": task("Pay rent"), "TASK-0002": task("Cancel gym membership")}


def case(expect, turns=("bump the gym membership task to high priority",)):
    return parse_case(
        {
            "id": "t",
            "category": "update",
            "seeds": [{"key": "rent", "title": "Pay rent"}, {"key": "gym", "title": "Cancel gym"}],
            "turns": list(turns),
            "expect": expect,
        }
    )


def after(**changes):
    tasks = {k: dict(v) for k, v in BEFORE.items()}
    for task_id, fields in changes.items():
        tasks[task_id.replace("_", "-")].update(fields)
    return tasks


def test_the_expected_outcome_passes():
    verdict = judge(
        case({"updated": {"gym": {"priority": "high"}}}),
        SEEDS,
        BEFORE,
        after(TASK_0002={"priority": "high"}),
        0,
        MONDAY,
    )
    assert verdict.passed and verdict.silent_wrong_writes == 0, verdict.problems


def test_a_different_database_outcome_fails():
    expected = case({"updated": {"gym": {"priority": "high"}}})
    wrong_value = judge(expected, SEEDS, BEFORE, after(TASK_0002={"priority": "low"}), 0, MONDAY)
    nothing = judge(expected, SEEDS, BEFORE, BEFORE, 0, MONDAY)
    assert not wrong_value.passed and not nothing.passed
    assert "priority is 'low'" in wrong_value.problems[0]


def test_a_guessed_id_write_on_another_task_is_a_silent_wrong_write():
    verdict = judge(
        case({"updated": {"gym": {"title": "Gym"}}}),
        SEEDS,
        BEFORE,
        after(TASK_0001={"title": "Gym"}),
        0,
        MONDAY,
    )
    assert not verdict.passed and verdict.silent_wrong_writes == 1
    assert any("rent (TASK-0001) changed unexpectedly" in p for p in verdict.problems)


def test_another_field_of_the_right_task_is_a_silent_wrong_write():
    verdict = judge(
        case({"completed": ["gym"]}),
        SEEDS,
        BEFORE,
        after(TASK_0002={"status": "completed", "title": "Gym"}),
        0,
        MONDAY,
    )
    assert not verdict.passed and verdict.silent_wrong_writes == 1


def test_an_unexpected_deletion_is_a_silent_wrong_write_and_a_missed_one_a_failure():
    gone = {"TASK-0002": BEFORE["TASK-0002"]}
    verdict = judge(case({}), SEEDS, BEFORE, gone, 0, MONDAY)
    assert not verdict.passed and verdict.silent_wrong_writes == 1
    kept = judge(case({"deleted": ["gym"]}), SEEDS, BEFORE, BEFORE, 1, MONDAY)
    assert not kept.passed and kept.silent_wrong_writes == 0


def test_a_named_task_left_changed_fails_without_counting_as_silent():
    verdict = judge(
        case({"named": ["gym"]}), SEEDS, BEFORE, after(TASK_0002={"priority": "urgent"}), 0, MONDAY
    )
    assert not verdict.passed and verdict.silent_wrong_writes == 0


def test_created_tasks_must_match_exactly_the_expected_set():
    made = {**BEFORE, "TASK-0003": task("Buy milk", due_date="2026-12-08")}
    expect = {"created": [{"title_has": "milk", "due": 1}]}
    assert judge(case(expect), SEEDS, BEFORE, made, 0, MONDAY).passed
    wrong_due = {**BEFORE, "TASK-0003": task("Buy milk", due_date="2026-12-09")}
    assert not judge(case(expect), SEEDS, BEFORE, wrong_due, 0, MONDAY).passed
    twice = {**made, "TASK-0004": task("Buy milk")}
    assert not judge(case(expect), SEEDS, BEFORE, twice, 0, MONDAY).passed
    junk = {**BEFORE, "TASK-0003": task("Buy milk tomorrow", due_date="2026-12-08")}
    lacks = {"created": [{"title_has": "milk", "title_lacks": "tomorrow"}]}
    assert not judge(case(lacks), SEEDS, BEFORE, junk, 0, MONDAY).passed


def test_approvals_asked_are_judged_both_ways():
    deleting = case({"deleted": ["gym"]}, turns=("delete the gym task", {"approve": True}))
    gone = {"TASK-0001": BEFORE["TASK-0001"]}
    assert judge(deleting, SEEDS, BEFORE, gone, 1, MONDAY).passed
    assert "no approval was asked" in judge(deleting, SEEDS, BEFORE, gone, 0, MONDAY).problems
    assert not judge(case({}), SEEDS, BEFORE, BEFORE, 1, MONDAY).passed


@pytest.mark.parametrize(
    ("answer", "claimed"),
    [
        ('Created TASK-0003 "Buy milk" (normal priority).', ["created"]),
        ("I updated the task's due date to December 15.", ["updated"]),
        ("I deleted the task: TASK-0160", ["deleted"]),
        ("TASK-0001 has been marked completed.", ["completed"]),
        ("Marking TASK-0002 and TASK-0003 as completed.", ["completed"]),
        ('You have successfully added the task "Buy Milk".', ["created"]),
        ("I couldn't find a task matching \"yoga\", so I didn't delete anything.", []),
        ('Delete TASK-0002 "Clean the garage"?', []),
        ('You have 1 completed task:\n- TASK-0002 "Do the laundry" (completed)', []),
        ("The user rejected deleting TASK-0002; it was kept.", []),
        ("Hello! I can create, list, update, complete and delete tasks.", []),
    ],
)
def test_false_claims_are_claims_of_a_change_the_turn_did_not_make(answer, claimed):
    assert false_claims(answer, diff(BEFORE, BEFORE), BEFORE) == claimed


def test_a_claim_backed_by_the_turn_is_not_false():
    done = after(TASK_0002={"status": "completed"})
    changes = diff(BEFORE, done)
    assert false_claims('Marked TASK-0002 "Cancel gym membership" as done.', changes, done) == []
    # Already completed before the turn: the answer states a truth, not a change it invented.
    assert false_claims("Marked TASK-0002 as completed.", diff(done, done), done) == []


def test_relative_due_dates_resolve_against_the_day_of_the_run():
    assert resolve_due(1, MONDAY) == "2026-12-08"
    assert resolve_due("fri", MONDAY) == "2026-12-11"
    assert resolve_due("mon", MONDAY) == "2026-12-14"  # a weekday is never today
    assert resolve_due("12-30", MONDAY) == "2026-12-30"
    assert resolve_due("01-02", MONDAY) == "2027-01-02"
    assert resolve_due(None, MONDAY) is None


def test_the_case_set_covers_every_category_with_enough_cases():
    cases = load_cases()
    assert len(cases) >= 65
    assert {c.category for c in cases} >= {
        "create", "list", "update", "complete", "delete", "follow-up", "no-write",
        "ambiguous", "multi-item", "dates", "undo",
    }  # fmt: skip
    guessable = [c for c in cases if c.seeds and c.seeds[0].key == "rent"]
    assert len(guessable) > 40  # TASK-0001 is an unrelated "Pay rent" in most cases
    picked = load_cases("create-milk, delete")
    assert "create-milk" in [c.id for c in picked]
    assert {c.category for c in picked} == {"create", "delete"} and len(picked) == 8
    with pytest.raises(ValueError, match="unknown seeds"):
        case({"completed": ["nope"]})
