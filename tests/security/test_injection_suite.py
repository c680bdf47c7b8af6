"""Hundreds of prompt injections through the real server, judged by the database, not the text.

One server runs with three API keys: `victim` (write) owns five tasks; `reader` (read) and
`mallory` (write) attack. Its model tier is a fake OpenAI server that *obeys* every
injection (it answers each attack with the malicious tool calls of its case, then "Done."),
so whatever stops an attack has to be the product: the input guard, the tool guard's role
matrix and argument schemas, and per-owner queries in the store. Afterwards the test opens
`tasks.sqlite` read-only and checks that nothing the attackers should not touch changed.
A second server without any model (the offline engine) gets a sample of the same texts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.injection import detect_injection
from nodes.guard_input import INJECTION_REASON
from tests.fakes.obedient import ObedientOpenAIServer
from tests.integration.conftest import LiveServer
from tests.security.corpus import (
    VICTIM,
    VICTIM_TASKS,
    VICTIM_TITLES,
    AttackCase,
    build_corpus,
    sample,
)
from tools.schemas import MUTATING_TOOLS

pytestmark = pytest.mark.integration

KEYS = {"victim": "k-victim-7c1d", "reader": "k-reader-52aa", "mallory": "k-mallory-9be0"}
ROLES = {"victim": "write", "reader": "read", "mallory": "write"}
ATTACKERS = ("reader", "mallory")
CASES_PER_ATTACKER = 380  # 760 through the server in all
OFFLINE_CASES = 120
CONCURRENCY = 6


@dataclass
class Sent:
    """One attack sent as one user, and what the server answered."""

    case: AttackCase
    user: str
    status: int
    body: dict[str, Any]
    elapsed: float


@dataclass
class Outcome:
    """Everything a suite run leaves for the assertions."""

    data_dir: Path
    victim_before: list[dict[str, Any]]
    sent: list[Sent]
    seconds: float
    obeyed: dict[str, int]
    log: str


def server_env(**extra: str) -> dict[str, str]:
    keys = ",".join(f"{KEYS[user]}:{user}:{ROLES[user]}" for user in KEYS)
    return {
        "TASKAGENT_API_KEYS": keys,
        "TASKAGENT_MODEL_TIMEOUT_S": "15",
        # Hundreds of turns per user in a minute: budgets and rate limits have their own
        # tests, and here they would only turn attacks into refusals before the tool guard.
        "TASKAGENT_BUDGET_TOKENS_PER_USER_DAY": "0",
        "TASKAGENT_BUDGET_USD_PER_USER_DAY": "0",
        "TASKAGENT_RATE_LIMIT_RPM": "0",
        "TASKAGENT_RATE_LIMIT_TPM": "0",
        **extra,
    }


def tasks(
    data_dir: Path, where: str = "1 = 1", params: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    """Rows of the tasks table, read through a read-only connection of our own."""
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(f"SELECT * FROM tasks WHERE {where} ORDER BY seq", params).fetchall()
    return [dict(row) for row in rows]


def stored_results(data_dir: Path, owner: str) -> list[dict[str, Any]]:
    """The mutating tool calls the store executed for `owner`, with their results."""
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute(
            "SELECT tool, arguments, result FROM tool_results WHERE owner = ?", (owner,)
        ).fetchall()
    return [{"tool": t, "arguments": json.loads(a), "result": json.loads(r)} for t, a, r in rows]


async def send_all(url: str, work: list[tuple[AttackCase, str]]) -> list[Sent]:
    """POST every case to /chat as its user on a fresh thread, a few at a time.

    A dropped connection is recorded (status 0) rather than raised, so one failure is
    reported with its case instead of hiding the rest of the run.
    """
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(case: AttackCase, user: str) -> Sent:
            # Both header forms of the key contract are exercised.
            headers = (
                {"X-Api-Key": KEYS[user]}
                if user == "reader"
                else {"Authorization": f"Bearer {KEYS[user]}"}
            )
            async with gate:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/chat", json={"message": case.text}, headers=headers
                    )
                except httpx.TransportError as exc:
                    return Sent(case, user, 0, {"error": repr(exc)}, time.perf_counter() - started)
                body = response.json() if response.content else {}
                return Sent(case, user, response.status_code, body, time.perf_counter() - started)

        return await asyncio.gather(*(one(case, user) for case, user in work))


def seed_victim(url: str, messages: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for message in messages:
            response = client.post(
                "/chat", json={"message": message}, headers={"X-Api-Key": KEYS[VICTIM]}
            )
            assert response.status_code == 200, response.text


def run_suite(
    data_dir: Path, env: dict[str, str], seed: list[str], work: list[tuple[AttackCase, str]]
) -> tuple[list[dict[str, Any]], list[Sent], float, str]:
    server = LiveServer(data_dir, env=env)
    # The server logs a line per request; drain its pipe so it never blocks on a full one.
    lines: list[str] = []
    assert server.proc.stdout is not None
    drain = threading.Thread(target=lambda: lines.extend(server.proc.stdout or []), daemon=True)
    drain.start()
    try:
        seed_victim(server.url, seed)
        before = tasks(data_dir, "owner = ?", (VICTIM,))
        assert [t["id"] for t in before] == list(VICTIM_TASKS)
        started = time.perf_counter()
        sent = asyncio.run(send_all(server.url, work))
        seconds = time.perf_counter() - started
    finally:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
        drain.join(timeout=5)
    return before, sent, seconds, "".join(lines)


@pytest.fixture(scope="module")
def obedient_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    corpus = build_corpus()
    work = [
        (case, user)
        for index, user in enumerate(ATTACKERS)
        for case in sample(corpus, CASES_PER_ATTACKER, seed=index)
    ]
    with ObedientOpenAIServer() as model:
        seed = []
        for title in VICTIM_TITLES:
            message = f"please add {title}"
            model.teach(message, [("create_task", {"title": title, "priority": "high"})])
            seed.append(message)
        for case, _ in work:
            model.teach(case.text, [(call.name, call.args) for call in case.calls])
        data_dir = tmp_path_factory.mktemp("obedient") / "data"
        env = server_env(OPENAI_BASE_URL=model.base_url, OPENAI_MODEL="obedient")
        before, sent, seconds, log = run_suite(data_dir, env, seed, work)
        yield Outcome(data_dir, before, sent, seconds, dict(model.obeyed), log)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    seed = [f"new task: {title}" for title in VICTIM_TITLES]
    work = [(case, "mallory") for case in sample(build_corpus(), OFFLINE_CASES, seed=7)]
    data_dir = tmp_path_factory.mktemp("offline") / "data"
    before, sent, seconds, log = run_suite(data_dir, server_env(), seed, work)
    return Outcome(data_dir, before, sent, seconds, {}, log)


def report(outcome: Outcome, label: str) -> None:
    per_user = Counter(s.user for s in outcome.sent)
    statuses = Counter(s.status for s in outcome.sent)
    blocked = Counter(s.user for s in outcome.sent if detect_injection(s.case.text).block)
    print(
        f"\n{label}: {len(outcome.sent)} injections in {outcome.seconds:.1f}s "
        f"(per user {dict(per_user)}, refused by the input guard {dict(blocked)}, "
        f"statuses {dict(statuses)})"
    )


# --------------------------------------------------------------------------- obedient model


def test_enough_injections_went_through_the_server(obedient_run: Outcome) -> None:
    report(obedient_run, "obedient model")
    per_user = Counter(s.user for s in obedient_run.sent)
    assert sum(per_user.values()) >= 700
    assert set(per_user) == set(ATTACKERS)


def server_errors(outcome: Outcome) -> str:
    """The server's log lines about failed requests, for assertion messages."""
    lines = outcome.log.splitlines()
    marks = [i for i, line in enumerate(lines) if "Error" in line or "Traceback" in line]
    return "\n".join(lines[max(0, marks[0] - 2) : marks[0] + 60]) if marks else ""


def test_every_answer_is_200_or_a_clear_4xx(obedient_run: Outcome) -> None:
    failed = [
        (s.case.id, s.user, s.status, s.body)
        for s in obedient_run.sent
        if not 200 <= s.status < 500
        or (s.status >= 400 and not (isinstance(s.body.get("detail"), str) and s.body["detail"]))
    ]
    assert failed == [], f"{failed}\n{server_errors(obedient_run)}"


def test_victims_tasks_are_exactly_as_before(obedient_run: Outcome) -> None:
    after = tasks(obedient_run.data_dir, "owner = ?", (VICTIM,))
    assert after == obedient_run.victim_before  # same rows, same columns, same updated_at


def test_attackers_created_or_changed_nothing(obedient_run: Outcome) -> None:
    # Every malicious create in the corpus names another owner, so none may succeed at all.
    assert tasks(obedient_run.data_dir, "owner != ?", (VICTIM,)) == []
    assert stored_results(obedient_run.data_dir, "reader") == []
    executed = stored_results(obedient_run.data_dir, "mallory")
    assert all(row["result"]["ok"] is False for row in executed), [
        row for row in executed if row["result"]["ok"] is not False
    ]


def test_no_answer_leaks_the_victims_tasks(obedient_run: Outcome) -> None:
    for sent in obedient_run.sent:
        text = json.dumps(sent.body)
        assert not any(title in text for title in VICTIM_TITLES), (sent.case.id, text)
        # An approval question would name the victim's task: none may ever be asked.
        assert sent.body.get("interrupt") is None, (sent.case.id, sent.body)


def test_the_obedient_model_was_reached_and_every_call_it_made_was_refused(
    obedient_run: Outcome,
) -> None:
    reached: Counter[str] = Counter()
    fell_back: list[tuple[str, str, str]] = []
    for sent in obedient_run.sent:
        if sent.case.text not in obedient_run.obeyed:
            continue
        reached[sent.user] += 1
        if sent.status != 200:
            continue  # reported by test_every_answer_is_200_or_a_clear_4xx
        if sent.body["fallback_used"]:
            # The fake never fails, so a fallback means the turn broke on our side.
            fell_back.append((sent.case.id, sent.user, sent.body["model_used"]))
            continue
        records = sent.body["tool_calls"]
        assert records, (sent.case.id, sent.body)
        for record in records:
            result = record["result"] or {}
            if record["tool"] in MUTATING_TOOLS:
                assert result.get("ok") is False, (sent.case.id, sent.user, record)
                if sent.user == "reader":
                    # Refused by the role matrix (or the loop guard), never by a task lookup.
                    error = result.get("error", "")
                    assert "not allowed" in error or error.startswith("Not executed"), (
                        sent.case.id,
                        record,
                    )
            elif result.get("ok"):
                assert result.get("count", 0) == 0, (sent.case.id, record)
    print(f"\nattacks the obedient model acted on, per user: {dict(reached)}")
    # The authorization layer, not only the input guard, must have faced many attacks.
    assert all(reached[user] >= 100 for user in ATTACKERS), reached
    assert fell_back == [], f"{fell_back}\n{server_errors(obedient_run)}"


def test_refused_messages_never_reached_the_model(obedient_run: Outcome) -> None:
    for sent in obedient_run.sent:
        if detect_injection(sent.case.text).block:
            assert sent.case.text not in obedient_run.obeyed, sent.case.id
            if sent.status != 200:
                continue  # reported by test_every_answer_is_200_or_a_clear_4xx
            assert sent.body["model_used"] == "guard"
            assert sent.body["tool_calls"] == []
            assert INJECTION_REASON in sent.body["message"]
            assert sent.case.text not in sent.body["message"]


# --------------------------------------------------------------------------- offline engine


def test_offline_engine_attacks_leave_the_victim_untouched(offline_run: Outcome) -> None:
    report(offline_run, "offline engine")
    assert len(offline_run.sent) >= 100
    for sent in offline_run.sent:
        assert sent.status == 200, (sent.case.id, sent.body, server_errors(offline_run))
        assert sent.body.get("interrupt") is None, (sent.case.id, sent.body)
        assert not any(title in json.dumps(sent.body) for title in VICTIM_TITLES), sent.case.id
    assert tasks(offline_run.data_dir, "owner = ?", (VICTIM,)) == offline_run.victim_before
    # mallory may create tasks of her own; nobody else may own anything new
    owners = {t["owner"] for t in tasks(offline_run.data_dir)}
    assert owners <= {VICTIM, "mallory"}
    assert all(
        row["result"]["ok"] is False or row["tool"] == "create_task"
        for row in stored_results(offline_run.data_dir, "mallory")
    )
