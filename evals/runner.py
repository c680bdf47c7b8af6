"""Run cases against a server over HTTP, like a user, and judge each from its database."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from evals.cases import Case, resolve_due
from evals.judge import diff, false_claims, judge, read_audit, read_prompt_tokens, read_tasks
from evals.servers import ModelChoice, Target

ServerFactory = Callable[[Path], AbstractAsyncContextManager[Target]]


@dataclass
class TurnRecord:
    """What one turn cost and said."""

    said: str
    status: int
    latency_s: float
    answer: str = ""
    model_used: str = ""
    fallback_used: bool = False
    run_id: str = ""
    prompt_tokens: int | None = None
    false_claims: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    """The verdict on one case and the measurements behind it."""

    case_id: str
    category: str
    passed: bool
    problems: list[str]
    silent_wrong_writes: int = 0
    false_claims: int = 0
    tool_errors: int = 0
    fallbacks: int = 0
    turns: list[TurnRecord] = field(default_factory=list)
    error: str | None = None


class CaseAborted(Exception):
    """The conversation could not go on (an HTTP error, a timeout, an unexpected pause)."""


async def _seed(target: Target, case: Case, today: date) -> dict[str, str]:
    if not target.fresh:
        # A shared server: start each case from an empty task list for this user.
        for task_id in read_tasks(target.tasks_db, target.user):
            await target.client.delete(f"/tasks/{task_id}")
    ids: dict[str, str] = {}
    for seed in case.seeds:
        body: dict[str, Any] = {
            "title": seed.title,
            "priority": seed.priority,
            "tags": list(seed.tags),
        }
        due = resolve_due(seed.due, today)
        if due is not None:
            body["due_date"] = due
        made = await target.client.post("/tasks", json=body)
        if made.status_code != 201:
            raise CaseAborted(f"seeding {seed.key} failed: {made.status_code} {made.text[:200]}")
        ids[seed.key] = made.json()["id"]
        if seed.status == "completed":
            done = await target.client.post(f"/tasks/{ids[seed.key]}/complete")
            if done.status_code != 200:
                raise CaseAborted(f"completing seed {seed.key} failed: {done.status_code}")
    return ids


async def _turn(
    target: Target, body: dict[str, Any], said: str
) -> tuple[TurnRecord, dict[str, Any] | None]:
    started = time.perf_counter()
    try:
        response = await target.client.post("/chat", json=body)
    except httpx.TimeoutException:
        raise CaseAborted(f"turn {said!r} timed out") from None
    record = TurnRecord(said, response.status_code, time.perf_counter() - started)
    if response.status_code != 200:
        record.answer = response.text[:300]
        return record, None
    data: dict[str, Any] = response.json()
    record.answer = str(data.get("message", ""))
    record.model_used = str(data.get("model_used", ""))
    record.fallback_used = bool(data.get("fallback_used"))
    record.run_id = str(data.get("run_id", ""))
    return record, data


async def run_case(target: Target, case: Case, model: ModelChoice) -> CaseResult:
    """Seed, converse, and judge one case on `target`."""
    today = date.today()
    result = CaseResult(case.id, case.category, False, [])
    seed_ids = await _seed(target, case, today)
    before = read_tasks(target.tasks_db, target.user)
    audit_start = len(read_audit(target.tasks_db, target.user))
    thread_id: str | None = None
    pending: dict[str, Any] | None = None
    interrupts = 0
    try:
        for turn in case.turns:
            said = turn.say if turn.say is not None else ("approve" if turn.approve else "reject")
            body: dict[str, Any]
            if turn.say is not None:
                body = {"message": turn.say}
                if thread_id:
                    body["thread_id"] = thread_id
            elif pending is None or thread_id is None:
                result.problems.append(f"turn {said!r}: no approval was pending")
                continue
            else:
                body = {
                    "thread_id": thread_id,
                    "resume": {
                        "approved": bool(turn.approve),
                        "tool_call_id": pending.get("tool_call_id"),
                        "approval_id": pending.get("approval_id"),
                    },
                }
            turn_before = read_tasks(target.tasks_db, target.user)
            record, data = await _turn(target, body, said)
            result.turns.append(record)
            if data is None:
                raise CaseAborted(f"turn {said!r} answered {record.status}: {record.answer}")
            thread_id = str(data["thread_id"])
            pending = data.get("interrupt")
            if pending:
                interrupts += 1
            else:
                turn_after = read_tasks(target.tasks_db, target.user)
                changes = diff(turn_before, turn_after)
                record.false_claims = false_claims(record.answer, changes, turn_after)
    except CaseAborted as exc:
        result.error = str(exc)
    after = read_tasks(target.tasks_db, target.user)
    audit = read_audit(target.tasks_db, target.user)[audit_start:]
    tokens = read_prompt_tokens(target.tasks_db, target.user)
    for record in result.turns:
        record.prompt_tokens = tokens.get(record.run_id)
    answered = sum(row["kind"] == "approval" for row in audit)
    verdict = judge(case, seed_ids, before, after, max(interrupts, answered), today)
    result.problems += verdict.problems
    if result.error:
        result.problems.append(result.error)
    result.passed = not result.problems
    result.silent_wrong_writes = verdict.silent_wrong_writes
    result.false_claims = sum(bool(t.false_claims) for t in result.turns)  # answers, not kinds
    result.tool_errors = sum(
        row["kind"] == "denied" or (row["kind"] == "tool" and not row["success"]) for row in audit
    )
    result.fallbacks = sum(
        t.fallback_used or (t.model_used not in ("", model.label)) for t in result.turns
    )
    return result


async def run_cases(
    cases: list[Case],
    server: ServerFactory,
    model: ModelChoice,
    *,
    repeat: int = 1,
    total_timeout_s: float = 3600.0,
    scratch: Path | None = None,
    progress: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run every case `repeat` times, each on the server `server` gives for its data dir.

    Cases left when `total_timeout_s` runs out are reported as failed, not silently dropped.
    """
    results: list[CaseResult] = []
    deadline = time.monotonic() + total_timeout_s
    with tempfile.TemporaryDirectory(prefix="taskagent-eval-", dir=scratch) as root:
        try:
            async for index, case in _schedule(cases, repeat):
                results.append(
                    await _run_one(server, Path(root) / f"case-{index:04d}", case, model, deadline)
                )
                if progress is not None:
                    progress(results[-1])
        finally:
            close = getattr(server, "close", None)
            if close is not None:
                close()
    return results


async def _run_one(
    server: ServerFactory, data_dir: Path, case: Case, model: ModelChoice, deadline: float
) -> CaseResult:
    if time.monotonic() > deadline:
        result = CaseResult(case.id, case.category, False, ["total timeout: not run"])
        result.error = "not run"
        return result
    try:
        async with server(data_dir) as target:
            remaining = max(1.0, deadline - time.monotonic())
            return await asyncio.wait_for(run_case(target, case, model), remaining)
    except (CaseAborted, TimeoutError, RuntimeError, httpx.HTTPError) as exc:
        result = CaseResult(case.id, case.category, False, [f"aborted: {exc!r}"])
        result.error = repr(exc)
        return result


async def _schedule(cases: list[Case], repeat: int) -> AsyncIterator[tuple[int, Case]]:
    index = 0
    for _ in range(repeat):
        for case in cases:
            yield index, case
            index += 1
