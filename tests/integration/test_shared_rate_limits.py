"""Rate limits on PostgreSQL (`DATABASE_URL`): one set of buckets for every replica.

First the bucket statements themselves, on a real database with an injected wall clock;
then two real replicas on one database, driven alternately, where a user gets the limit
once in total (not once per replica) and a guessing address is stopped once in total.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest

from server.security.ratelimit import AuthFailureLimiter, RateLimiter
from server.security.shared_buckets import SWEEP_S, SharedBuckets
from tests.integration.test_replicas import query, replicas, stop_all
from tools.storage_errors import classify

pytestmark = pytest.mark.integration

KEYS = "k-alice-rl-0000:alice:write,k-bob-rl-00000:bob:write"
ALICE = {"X-Api-Key": "k-alice-rl-0000"}
BOB = {"X-Api-Key": "k-bob-rl-00000"}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clock_and_buckets(pg_url: str) -> AsyncIterator[tuple[Clock, SharedBuckets]]:
    clock = Clock()
    buckets = await SharedBuckets.open(pg_url, clock)
    yield clock, buckets
    await buckets.close()


async def test_a_bucket_refills_at_capacity_per_minute_up_to_capacity(clock_and_buckets):
    clock, buckets = clock_and_buckets
    assert await buckets.wait_for("r", 60, 1) == 0  # no row: a full bucket
    assert [await buckets.take_if_ready("r", 60, 1) for _ in range(60)] == [0.0] * 60
    assert await buckets.take_if_ready("r", 60, 1) == pytest.approx(1.0)  # refused: not taken
    clock.now += 0.5
    assert await buckets.take_if_ready("r", 60, 1) == pytest.approx(0.5)
    clock.now += 0.5
    assert await buckets.take_if_ready("r", 60, 1) == 0.0
    clock.now += 3600  # an hour idle refills to capacity, no further
    assert [await buckets.take_if_ready("r", 60, 1) for _ in range(61)][-2:] == [0.0, 1.0]


async def test_tokens_go_into_debt_paid_back_by_refilling(clock_and_buckets):
    clock, buckets = clock_and_buckets
    await buckets.take("t", 600, 1200)  # two minutes' worth: level -600
    assert await buckets.wait_for("t", 600, 1) == pytest.approx(60.1)
    clock.now += 60
    assert await buckets.wait_for("t", 600, 1) == pytest.approx(0.1)
    clock.now += 0.2  # (epoch seconds leave a float some millionths short at exactly 0.1)
    assert await buckets.wait_for("t", 600, 1) == 0


async def test_a_replica_whose_clock_is_behind_refills_nothing(pg_url, clock_and_buckets):
    clock, buckets = clock_and_buckets
    behind = SharedBuckets(buckets._conn, Clock(clock.now - 10))
    for _ in range(2):
        await buckets.take_if_ready("r", 6, 1)
    await behind.take("r", 6, 4)  # level 0, still updated at the later time
    assert await buckets.take_if_ready("r", 6, 1) == pytest.approx(10.0)
    assert query(pg_url, "SELECT level, updated FROM rate_buckets") == [(0.0, clock.now)]


async def test_concurrent_takes_never_admit_more_than_the_bucket_holds(clock_and_buckets):
    _, buckets = clock_and_buckets
    waits = await asyncio.gather(*(buckets.take_if_ready("r", 10, 1) for _ in range(40)))
    assert waits.count(0.0) == 10


async def test_full_buckets_are_swept_and_debts_are_kept(pg_url, clock_and_buckets):
    clock, buckets = clock_and_buckets
    failures = AuthFailureLimiter(3, buckets)
    for n in range(50):
        await failures.failed(f"10.0.0.{n}")
    limiter = RateLimiter(rpm=0, tpm=100, buckets=buckets)
    await limiter.spend_tokens("alice", 500)
    assert len(query(pg_url, "SELECT key FROM rate_buckets")) == 51
    clock.now += SWEEP_S
    await failures.failed("10.0.0.99")
    assert sorted(k for (k,) in query(pg_url, "SELECT key FROM rate_buckets")) == [
        "auth:10.0.0.99",
        "tokens:alice",
    ]
    # 100 - 500 = -400, a minute later -300: 301 tokens to wait for at 100 a minute.
    assert await limiter.admit("alice") == 181


async def test_an_unreachable_database_is_a_storage_error_not_an_admission(pg_url):
    buckets = await SharedBuckets.open(pg_url)
    await buckets.close()  # the pool is gone, as when the database cannot be reached
    limiter = RateLimiter(rpm=5, tpm=0, buckets=buckets)
    with pytest.raises(psycopg.Error) as raised:
        await limiter.admit("alice")
    assert classify(raised.value) is not None  # answered 503 + Retry-After


def from_address(address: str) -> httpx.AsyncClient:
    """A client whose requests come from `address` (any 127.x.y.z is loopback)."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=30)


async def test_two_replicas_admit_a_users_limit_once_in_total(tmp_path: Path, pg_url: str):
    limit = 5
    env = {"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_RATE_LIMIT_RPM": str(limit)}
    servers = await replicas(tmp_path, pg_url, env=env)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            answers = [
                await http.get(f"{servers[n % 2].url}/chat/threads", headers=ALICE)
                for n in range(limit + 4)
            ]
            assert [a.status_code for a in answers] == [200] * limit + [429] * 4
            for refused in answers[limit : limit + 2]:  # one from each replica
                assert int(refused.headers["retry-after"]) >= 1
                assert refused.json()["detail"].startswith("Rate limit reached for alice")
            assert (await http.get(f"{servers[1].url}/chat/threads", headers=BOB)).is_success
    finally:
        stop_all(servers)


async def test_failed_logins_from_one_address_are_limited_once_in_total(
    tmp_path: Path, pg_url: str
):
    limit = 4
    env = {"TASKAGENT_API_KEYS": KEYS, "TASKAGENT_AUTH_FAILURES_PER_MINUTE": str(limit)}
    servers = await replicas(tmp_path, pg_url, env=env)
    try:
        async with from_address("127.0.0.1") as guesser, from_address("127.0.0.2") as alice:
            codes = [
                (
                    await guesser.get(
                        f"{servers[n % 2].url}/chat/threads", headers={"X-Api-Key": f"guess-{n}"}
                    )
                ).status_code
                for n in range(limit + 4)
            ]
            assert codes == [401] * limit + [429] * 4
            for server in servers:  # the right key gets no further from that address
                refused = await guesser.get(f"{server.url}/chat/threads", headers=ALICE)
                assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
                assert "Too many failed authentications" in refused.json()["detail"]
                assert (await alice.get(f"{server.url}/chat/threads", headers=ALICE)).is_success
    finally:
        stop_all(servers)
