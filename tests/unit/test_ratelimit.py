from server.security.ratelimit import AuthFailureLimiter, MemoryBuckets, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_requests_per_minute_refuse_with_retry_after_then_refill():
    clock = Clock()
    limiter = RateLimiter(rpm=3, tpm=0, clock=clock)
    assert [await limiter.admit("alice") for _ in range(3)] == [None, None, None]
    wait = await limiter.admit("alice")
    assert wait is not None and 1 <= wait <= 20
    assert await limiter.admit("bob") is None  # per user
    clock.now += wait
    assert await limiter.admit("alice") is None


async def test_token_debt_blocks_until_paid_back():
    clock = Clock()
    limiter = RateLimiter(rpm=0, tpm=600, clock=clock)
    assert await limiter.admit("alice") is None
    await limiter.spend_tokens("alice", 1200)  # a run used two minutes' worth
    wait = await limiter.admit("alice")
    assert wait is not None and 60 <= wait <= 61
    clock.now += 61
    assert await limiter.admit("alice") is None


async def test_no_limits_means_no_limiting():
    limiter = RateLimiter(rpm=0, tpm=0)
    assert not limiter.enabled
    assert all([await limiter.admit("x") is None for _ in range(1000)])


async def test_failed_authentications_block_the_address_then_are_forgiven():
    clock = Clock()
    failures = AuthFailureLimiter(per_minute=2, clock=clock)
    assert await failures.retry_after("10.0.0.1") is None
    await failures.failed("10.0.0.1")
    await failures.failed("10.0.0.1")
    assert await failures.retry_after("10.0.0.1") == 30
    assert await failures.retry_after("10.0.0.2") is None  # per address
    clock.now += 30
    assert await failures.retry_after("10.0.0.1") is None


async def test_memory_buckets_drop_forgiven_ones_beyond_their_bound():
    clock = Clock()
    buckets = MemoryBuckets(clock, max_tracked=3)
    for n in range(3):
        await buckets.take(f"10.0.0.{n}", 1, 1)
    clock.now += 59
    await buckets.take("10.0.0.8", 1, 1)  # none is full yet: kept
    clock.now += 1
    await buckets.take("10.0.0.9", 1, 1)
    assert sorted(buckets._buckets) == ["10.0.0.8", "10.0.0.9"]
    assert await buckets.wait_for("10.0.0.9", 1, 1) == 60
