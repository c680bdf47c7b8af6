"""The judge: what a conversation did to the user's tasks, read from the database."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from evals.cases import TASK_FIELDS, Case, CreatedSpec, accepted_dues

Tasks = dict[str, dict[str, Any]]


def _connect(path: Path) -> sqlite3.Connection:
    # Read-only: the judge never writes into the server's database.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def read_tasks(path: Path, owner: str) -> Tasks:
    """Return `owner`'s tasks by id, with the fields a user can see."""
    with _connect(path) as conn:
        rows = conn.execute(
            f"SELECT id, {', '.join(TASK_FIELDS)} FROM tasks WHERE owner = ?", (owner,)
        ).fetchall()
    tasks: Tasks = {}
    for task_id, *values in rows:
        task = dict(zip(TASK_FIELDS, values, strict=True))
        task["tags"] = sorted(json.loads(task["tags"]))
        tasks[str(task_id)] = task
    return tasks


def read_audit(path: Path, owner: str) -> list[dict[str, Any]]:
    """Return `owner`'s audit rows about tools and approvals, oldest first."""
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT kind, tool, success, error, run_id FROM audit WHERE user = ?"
            " AND kind IN ('tool', 'denied', 'approval') ORDER BY id",
            (owner,),
        ).fetchall()
    return [
        {"kind": k, "tool": t, "success": bool(s), "error": e, "run_id": r}
        for k, t, s, e, r in rows
    ]


def read_prompt_tokens(path: Path, owner: str) -> dict[str, int]:
    """Return the prompt (input) tokens each of `owner`'s runs sent to models."""
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT run_id, SUM(input_tokens) FROM usage WHERE user = ? GROUP BY run_id", (owner,)
        ).fetchall()
    return {str(run_id): int(tokens) for run_id, tokens in rows}


@dataclass
class Changes:
    """The difference between two snapshots of one user's tasks."""

    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)


def diff(before: Tasks, after: Tasks) -> Changes:
    """Return what changed from `before` to `after` (timestamps are not changes)."""
    changes = Changes()
    for task_id, task in after.items():
        if task_id not in before:
            changes.created.append({"id": task_id, **task})
            continue
        fields = {
            f: (before[task_id][f], task[f]) for f in TASK_FIELDS if before[task_id][f] != task[f]
        }
        if fields:
            changes.changed[task_id] = fields
    changes.deleted = sorted(set(before) - set(after))
    return changes


@dataclass
class Verdict:
    """How one case went: pass or fail with reasons, and its silent wrong writes."""

    passed: bool
    problems: list[str]
    silent_wrong_writes: int


def _field_ok(name: str, want: Any, got: Any, today: date) -> bool:
    if name == "due":
        return got in accepted_dues(want, today)
    if name == "tags":
        return sorted(want) == sorted(got)
    if isinstance(want, list):
        return got in want
    return bool(got == want)


def _matches(spec: CreatedSpec, task: dict[str, Any], today: date) -> bool:
    title = str(task["title"]).lower()
    if not all(word.lower() in title for word in spec.title_has):
        return False
    if any(word.lower() in title for word in spec.title_lacks):
        return False
    for name, want in spec.fields.items():
        got = task["due_date"] if name == "due" else task[name]
        if not _field_ok(name, want, got, today):
            return False
    return True


def _match_created(
    specs: tuple[CreatedSpec, ...], created: list[dict[str, Any]], today: date
) -> list[str]:
    problems: list[str] = []
    left = list(created)
    for spec in specs:
        hit = next((t for t in left if _matches(spec, t, today)), None)
        if hit is None:
            made = [(t["title"], t["priority"], t["due_date"], t["tags"]) for t in created]
            problems.append(f"no created task matches {spec.title_has} {spec.fields}: {made}")
        else:
            left.remove(hit)
    problems += [f"unexpected task created: {t['id']} {t['title']!r}" for t in left]
    return problems


def judge(
    case: Case,
    seed_ids: dict[str, str],
    before: Tasks,
    after: Tasks,
    approvals_asked: int,
    today: date,
) -> Verdict:
    """Compare the database outcome of `case` with what it expects.

    `seed_ids` maps seed keys to the ids the server gave them; `approvals_asked` counts the
    approval questions the user was shown. A change to a task that existed before the
    conversation, which the case did not ask for (another task, or another field of the
    right one), is a silent wrong write.
    """
    expect = case.expect
    changes = diff(before, after)
    problems = _match_created(expect.created, changes.created, today)
    wrong = 0
    by_id = {seed_ids[key]: key for key in seed_ids}
    for task_id in sorted(
        {*changes.changed, *changes.deleted} | {seed_ids[k] for k in expect.touched}
    ):
        key = by_id.get(task_id, task_id)
        fields = changes.changed.get(task_id, {})
        if key in expect.deleted:
            if task_id not in changes.deleted:
                problems.append(f"{key} ({task_id}) was not deleted")
            continue
        if task_id in changes.deleted:
            problems.append(f"{key} ({task_id}) was deleted")
            wrong += 1
            continue
        want = dict(expect.updated.get(key, {}))
        if key in expect.completed:
            want["status"] = "completed"
        if not want and fields:
            problems.append(f"{key} ({task_id}) changed unexpectedly: {fields}")
            wrong += key not in expect.named
            continue
        for name, value in want.items():
            column = "due_date" if name == "due" else name
            if not _field_ok(name, value, after[task_id][column], today):
                problems.append(f"{key} ({task_id}) {column} is {after[task_id][column]!r}")
        stray = set(fields) - {"due_date" if n == "due" else n for n in want}
        if stray:
            problems.append(f"{key} ({task_id}) also changed {sorted(stray)}")
            wrong += 1
    if expect.approval == "asked" and approvals_asked == 0:
        problems.append("no approval was asked")
    if expect.approval == "not_asked" and approvals_asked:
        problems.append(f"{approvals_asked} approval(s) asked, none expected")
    return Verdict(not problems, problems, wrong)


# A claim is a first-person or passive statement that a change was made. Sentences that
# negate, ask, or only describe a task's status ("TASK-0003 (completed)") are not claims:
# this is a keyword heuristic, tuned to miss rather than to accuse.
_CLAIMS = {
    "created": r"\b(created|added|i'?ve added|i'?ve created)\b",
    "updated": r"\b(updated|changed|renamed|rescheduled|moved"
    r"|set (?:the |its )?(?:due|priority))\b",
    "completed": r"\b(mark(?:ed|ing)\b.*\b(?:done|complete|completed)|(?:has|have|is|are|was|were)"
    r" (?:now )?(?:been )?(?:marked )?completed|i'?ve completed|i completed)\b",
    "deleted": r"\b(deleted|removed)\b",
}
_NEGATION = re.compile(
    r"\b(not|n't|no|nothing|none|never|cannot|couldn'?t|unable|kept|rejected"
    r"|would you|do you|shall i|should i|want me)\b|\?",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?\n])\s+")


_TASK_ID = re.compile(r"\b[A-Z]+-\d+\b")


def claims(answer: str) -> list[tuple[str, set[str]]]:
    """Return each change an answer says it made, with the task ids named in that sentence.

    A keyword heuristic over sentences: see `_CLAIMS` and `_NEGATION`.
    """
    found: list[tuple[str, set[str]]] = []
    for sentence in _SENTENCE.split(answer):
        if _NEGATION.search(sentence):
            continue
        for kind, pattern in _CLAIMS.items():
            if re.search(pattern, sentence, re.IGNORECASE):
                found.append((kind, set(_TASK_ID.findall(sentence))))
    return found


def false_claims(answer: str, changes: Changes, after: Tasks | None = None) -> list[str]:
    """Return the kinds of change `answer` claims that `changes` (the same turn's) lacks.

    "Marked X completed" about a task that already was completed (in `after`) states a
    truth, so it is not counted; every other claim needs a matching change in the turn.
    """
    happened = {
        "created": bool(changes.created),
        "deleted": bool(changes.deleted),
        "completed": any(
            f.get("status", (None, None))[1] == "completed" for f in changes.changed.values()
        ),
        "updated": bool(changes.changed),
    }
    false: set[str] = set()
    for kind, ids in claims(answer):
        if happened[kind]:
            continue
        if kind == "completed" and ids and after is not None:
            if all(after.get(i, {}).get("status") == "completed" for i in ids):
                continue
        false.add(kind)
    return sorted(false)
