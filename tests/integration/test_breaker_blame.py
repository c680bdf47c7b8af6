"""What one user's requests, and a provider's own reports, may do to a model tier everyone shares.

One real server on loopback whose OpenAI tier is the fake OpenAI server: a read-only user's
oversized prompts are refused by the provider (400) and must not open the shared circuit
breaker; the whole prompt a model receives stays within `TASKAGENT_MAX_MODEL_INPUT_CHARS`;
negative token counts reported by the provider must not lower a user's spent budget.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.llm_servers import FakeOpenAIServer, RecordedRequest, Status
from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

KEYS = {"alice": "k-alice-51c2", "reader": "k-reader-0e9d", "spender": "k-spender-77ab"}
ROLES = {"alice": "write", "reader": "read", "spender": "write"}
MODEL = "openai:gpt-4o-mini"
INPUT_BUDGET = 8000
# Ordinary words (no injection pattern), just long: a message the input guard accepts.
FILLER = "Notes for the quarterly review: budget lines, vendor quotes and staffing. "


def long_message(chars: int) -> str:
    return (FILLER * (chars // len(FILLER) + 1))[:chars]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    fake: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {
        "OPENAI_BASE_URL": fake.base_url,
        "TASKAGENT_API_KEYS": ",".join(f"{KEYS[u]}:{u}:{ROLES[u]}" for u in KEYS),
        "TASKAGENT_MAX_MODEL_INPUT_CHARS": str(INPUT_BUDGET),
        "TASKAGENT_MODEL_TIMEOUT_S": "10",
    }
    live = LiveServer(tmp_path_factory.mktemp("blame") / "data", env=env)
    yield live
    live.stop()


@pytest.fixture(autouse=True)
def _plain_fake(fake: FakeOpenAIServer) -> Iterator[None]:
    fake.reset()
    yield
    fake.max_prompt_chars = None
    fake.usage = None
    fake.reset()


def chat(server: LiveServer, user: str, message: str, thread_id: str | None = None) -> Any:
    body: dict[str, Any] = {"message": message}
    if thread_id:
        body["thread_id"] = thread_id
    response = httpx.post(
        f"{server.url}/chat", json=body, headers={"X-Api-Key": KEYS[user]}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def breaker(server: LiveServer, tier: str) -> str:
    tiers = httpx.get(f"{server.url}/health", timeout=10).json()["tiers"]
    return next(str(t["breaker"]) for t in tiers if t["name"] == tier)


def prompt_chars(request: RecordedRequest) -> int:
    """Characters of a recorded prompt as the product counts them: texts plus tool calls."""
    total = 0
    for message in request.body["messages"]:
        content = message.get("content") or ""
        total += len(content) if isinstance(content, str) else len(json.dumps(content))
        calls = message.get("tool_calls") or []
        total += len(
            json.dumps([[c["function"]["name"], c["function"]["arguments"]] for c in calls])
        )
    return total


def test_the_whole_model_input_stays_within_its_budget(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    thread_id = None
    for turn in range(5):
        reply = chat(server, "alice", f"Turn {turn}. " + long_message(2500), thread_id)
        thread_id = reply["thread_id"]
        assert reply["model_used"] == MODEL
    requests = fake.chat_requests
    assert len(requests) == 5
    sizes = [prompt_chars(r) for r in requests]
    assert max(sizes) <= INPUT_BUDGET, sizes
    last = requests[-1].body["messages"]
    assert last[0]["role"] == "system" and "You manage the user's tasks" in last[0]["content"]
    assert last[-1]["role"] == "user" and last[-1]["content"].startswith("Turn 4. ")
    # Oldest turns went first, whole: the prompt still carries the turn before the newest.
    users = [m["content"][:7] for m in last if m["role"] == "user"]
    assert users == ["Turn 3.", "Turn 4."]
    assert breaker(server, "openai") == "closed"


def usage_rows(data_dir: Path, user: str) -> list[tuple[int, int, float]]:
    uri = f"file:{data_dir / 'tasks.sqlite'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        return db.execute(
            "SELECT input_tokens, output_tokens, cost_usd FROM usage WHERE user = ? ORDER BY id",
            (user,),
        ).fetchall()


def spent_tokens(data_dir: Path, user: str) -> int:
    return sum(tokens_in + tokens_out for tokens_in, tokens_out, _ in usage_rows(data_dir, user))


def test_negative_usage_from_the_provider_does_not_lower_the_budget(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    first = chat(server, "spender", "What should I plan for the review?")
    spent = first["usage"]["user_day_tokens"]
    assert first["model_used"] == MODEL and spent > 0
    fake.usage = {"prompt_tokens": -900_000, "completion_tokens": -50_000, "total_tokens": -950_000}
    second = chat(server, "spender", "And what about the vendor quotes?", first["thread_id"])
    assert spent_tokens(server.data_dir, "spender") > spent  # the budget did not go down
    assert second["model_used"] == MODEL
    assert second["usage"]["user_day_tokens"] > spent
    assert second["usage"]["thread_tokens"] > first["usage"]["thread_tokens"]
    # An absurd count is not believed either (an estimate stands in).
    fake.usage = {"prompt_tokens": 10**15, "completion_tokens": 3, "total_tokens": 10**15 + 3}
    third = chat(server, "spender", "Anything else to prepare?", first["thread_id"])
    assert third["model_used"] == MODEL
    assert third["usage"]["user_day_tokens"] > second["usage"]["user_day_tokens"]
    rows = usage_rows(server.data_dir, "spender")
    assert len(rows) == 3
    assert all(
        0 < tokens_in < 10_000 and 0 <= tokens_out < 10_000 for tokens_in, tokens_out, _ in rows
    )
    assert all(cost >= 0 for _, _, cost in rows)


def test_requests_the_provider_refuses_do_not_open_the_breaker_for_everyone(
    server: LiveServer, fake: FakeOpenAIServer
) -> None:
    fake.max_prompt_chars = 3000
    for _ in range(4):
        # A read-only user, each time on a new thread: the provider answers 400 every time.
        refused = chat(server, "reader", long_message(3900))
        assert refused["model_used"] == "offline-engine" and refused["fallback_used"] is True
    statuses = [r.behaviour.code for r in fake.chat_requests if isinstance(r.behaviour, Status)]
    assert statuses == [400, 400, 400, 400]  # one call each: a 400 is not retried
    assert breaker(server, "openai") == "closed"
    answered = chat(server, "alice", "How is my quarterly planning going?")
    assert answered["model_used"] == MODEL and answered["fallback_used"] is False
    assert answered["message"] == "ok"
