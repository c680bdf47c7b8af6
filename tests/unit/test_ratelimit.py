from server.security.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_refuse_with_retry_after_then_refill():
    clock = Clock()
    limiter = RateLimiter(rpm=3, tpm=0, clock=clock)
    assert [limiter.admit("alice") for _ in range(3)] == [None, None, None]
    wait = limiter.admit("alice")
    assert wait is not None and 1 <= wait <= 20
    assert limiter.admit("bob") is None  # per user
    clock.now += wait
    assert limiter.admit("alice") is None


def test_token_debt_blocks_until_paid_back():
    clock = Clock()
    limiter = RateLimiter(rpm=0, tpm=600, clock=clock)
    assert limiter.admit("alice") is None
    limiter.spend_tokens("alice", 1200)  # a run used two minutes' worth
    wait = limiter.admit("alice")
    assert wait is not None and 60 <= wait <= 61
    clock.now += 61
    assert limiter.admit("alice") is None


def test_no_limits_means_no_limiting():
    limiter = RateLimiter(rpm=0, tpm=0)
    assert not limiter.enabled
    assert all(limiter.admit("x") is None for _ in range(1000))
