from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import httpx2
import ollama
import openai
import pytest
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelConnectionError,
    ModelRateLimitError,
    OutputParserException,
)
from langchain_openai.chat_models.base import (
    OpenAIAPIError,
    OpenAIConnectionError,
    OpenAIInvalidRequestError,
    OpenAIRateLimitError,
    OpenAITimeoutError,
)
from pydantic import BaseModel, ValidationError

from models.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    backoff_delay,
    blames_request,
    is_transient,
    retry_after_seconds,
)

URL = "http://127.0.0.1:9/v1/chat/completions"


# ------------------------------------------------------------------ real exception objects


def hx_request() -> httpx.Request:
    return httpx.Request("POST", URL)


def hx2_request() -> httpx2.Request:
    return httpx2.Request("POST", URL)


def hx2_response(code: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(code, headers=headers, request=hx2_request(), json={"error": {}})


def openai_status(code: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    classes: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        409: openai.ConflictError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    cls = classes.get(code, openai.InternalServerError if code >= 500 else openai.APIStatusError)
    return cls(f"Error code: {code}", response=hx2_response(code, headers), body=None)


def httpx_status(code: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = hx_request()
    response = httpx.Response(code, headers=headers, request=request)
    return httpx.HTTPStatusError(f"{code}", request=request, response=response)


def ollama_error(code: int, headers: dict[str, str] | None = None) -> ollama.ResponseError:
    """Raise it exactly like ollama.AsyncClient._request_raw does (`from None`)."""
    try:
        try:
            raise httpx_status(code, headers)
        except httpx.HTTPStatusError as e:
            raise ollama.ResponseError(e.response.text or '{"error": "boom"}', code) from None
    except ollama.ResponseError as err:
        return err


def validation_error() -> ValidationError:
    class M(BaseModel):
        x: int

    try:
        M.model_validate({"x": "nope"})
    except ValidationError as e:
        return e
    raise AssertionError("unreachable")


def wrapped(inner: BaseException, outer: Exception | None = None) -> BaseException:
    outer = outer or RuntimeError("while calling the model")
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer from e
    except Exception as caught:
        return caught


def implicitly_wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:
            raise KeyError("secondary failure")  # noqa: B904 - implicit __context__ on purpose
    except KeyError as outer:
        return outer


TRANSIENT = {
    "httpx.ConnectError": httpx.ConnectError(
        "All connection attempts failed", request=hx_request()
    ),
    "httpx.ConnectTimeout": httpx.ConnectTimeout("timed out", request=hx_request()),
    "httpx.ReadTimeout": httpx.ReadTimeout("timed out", request=hx_request()),
    "httpx.PoolTimeout": httpx.PoolTimeout("pool"),
    "httpx.RemoteProtocolError": httpx.RemoteProtocolError("peer closed", request=hx_request()),
    "httpx.ReadError": httpx.ReadError("reset", request=hx_request()),
    "httpx2.ConnectError": httpx2.ConnectError("refused", request=hx2_request()),
    "httpx2.ReadTimeout": httpx2.ReadTimeout("timed out", request=hx2_request()),
    "httpx2.RemoteProtocolError": httpx2.RemoteProtocolError("peer closed", request=hx2_request()),
    "httpx 500": httpx_status(500),
    "httpx 503": httpx_status(503),
    "httpx 429": httpx_status(429),
    "ConnectionRefusedError": ConnectionRefusedError(111, "Connection refused"),
    "ConnectionResetError": ConnectionResetError(104, "Connection reset by peer"),
    "ConnectionError(ollama)": ConnectionError("Failed to connect to Ollama."),
    "TimeoutError": TimeoutError(),
    "asyncio.TimeoutError": TimeoutError(),
    "openai.APIConnectionError": openai.APIConnectionError(request=hx2_request()),
    "openai.APITimeoutError": openai.APITimeoutError(request=hx2_request()),
    "openai 500": openai_status(500),
    "openai 502": openai_status(502),
    "openai 503": openai_status(503),
    "openai 429": openai_status(429),
    "openai 408": openai_status(408),
    "langchain OpenAIRateLimitError": OpenAIRateLimitError(
        "rate", response=hx2_response(429), body=None
    ),
    "langchain OpenAIAPIError": OpenAIAPIError("server", response=hx2_response(500), body=None),
    "langchain OpenAITimeoutError": OpenAITimeoutError(hx2_request()),
    "langchain OpenAIConnectionError": OpenAIConnectionError(request=hx2_request()),
    "ModelRateLimitError": ModelRateLimitError("slow down"),
    "ModelConnectionError": ModelConnectionError("down"),
    "ollama 500": ollama_error(500),
    "ollama 503": ollama_error(503),
    "ollama 429": ollama_error(429),
    "wrapped ConnectError (cause)": wrapped(httpx.ConnectError("refused", request=hx_request())),
    "wrapped openai 503 (cause)": wrapped(openai_status(503)),
    "implicit context ReadTimeout": implicitly_wrapped(
        httpx.ReadTimeout("t", request=hx_request())
    ),
}

NOT_TRANSIENT = {
    "httpx 400": httpx_status(400),
    "httpx 404": httpx_status(404),
    "openai 400": openai_status(400),
    "openai 401": openai_status(401),
    "openai 403": openai_status(403),
    "openai 404": openai_status(404),
    "openai 409": openai_status(409),
    "openai 422": openai_status(422),
    "langchain OpenAIInvalidRequestError": OpenAIInvalidRequestError(
        "bad", response=hx2_response(400), body=None
    ),
    "ContextOverflowError": ContextOverflowError("too long"),
    "ollama 400": ollama_error(400),
    "ollama 401": ollama_error(401),
    "ollama 404 (model not found)": ollama_error(404),
    "ollama in-stream error (-1)": ollama.ResponseError("model requires more memory"),
    "ValueError": ValueError("bad"),
    "ValidationError": validation_error(),
    "OutputParserException": OutputParserException("could not parse"),
    "TypeError": TypeError("bad"),
    "CircuitOpenError": CircuitOpenError("ollama", 12.0),
    "RuntimeError": RuntimeError("unknown"),
    "KeyError": KeyError("x"),
    "wrapped openai 400 (cause)": wrapped(openai_status(400)),
    "wrapped CircuitOpenError": wrapped(CircuitOpenError("openai", 1.0)),
    "ValueError from ConnectError": wrapped(
        httpx.ConnectError("refused", request=hx_request()), ValueError("bad config")
    ),
}


@pytest.mark.parametrize("exc", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc) is True


@pytest.mark.parametrize("exc", NOT_TRANSIENT.values(), ids=NOT_TRANSIENT.keys())
def test_not_transient(exc: BaseException) -> None:
    assert is_transient(exc) is False


BLAMES_REQUEST = {
    "openai 400": openai_status(400),
    "openai 413": openai_status(413),
    "openai 422": openai_status(422),
    "langchain OpenAIInvalidRequestError": OpenAIInvalidRequestError(
        "bad", response=hx2_response(400), body=None
    ),
    "ContextOverflowError": ContextOverflowError("too long"),
    "httpx 400": httpx_status(400),
    "ollama 400": ollama_error(400),
    "wrapped openai 400 (cause)": wrapped(openai_status(400)),
}

# Faults of the tier itself, which every user meets: these count toward its breaker.
BLAMES_TIER = {
    "openai 401 (bad key)": openai_status(401),
    "openai 403": openai_status(403),
    "openai 404 (no such model)": openai_status(404),
    "openai 429": openai_status(429),
    "openai 500": openai_status(500),
    "openai 503": openai_status(503),
    "openai.APIConnectionError": openai.APIConnectionError(request=hx2_request()),
    "httpx.ConnectError": httpx.ConnectError("refused", request=hx_request()),
    "ollama 404 (model not found)": ollama_error(404),
    "ollama in-stream error (-1)": ollama.ResponseError("model requires more memory"),
    "ModelRateLimitError": ModelRateLimitError("slow down"),
    "TimeoutError": TimeoutError(),
    "RuntimeError": RuntimeError("unknown"),
    "wrapped openai 503 (cause)": wrapped(openai_status(503)),
}


@pytest.mark.parametrize("exc", BLAMES_REQUEST.values(), ids=BLAMES_REQUEST.keys())
def test_refusals_of_one_request_blame_the_request(exc: BaseException) -> None:
    assert blames_request(exc) is True


@pytest.mark.parametrize("exc", BLAMES_TIER.values(), ids=BLAMES_TIER.keys())
def test_server_side_faults_blame_the_tier(exc: BaseException) -> None:
    assert blames_request(exc) is False


def test_outermost_recognised_error_decides() -> None:
    # A 400 raised while handling a connection error is still a 400.
    try:
        try:
            raise httpx.ConnectError("refused", request=hx_request())
        except httpx.ConnectError:
            raise openai_status(400)  # noqa: B904
    except openai.BadRequestError as e:
        assert is_transient(e) is False


def test_chain_cycles_terminate() -> None:
    a = RuntimeError("a")
    b = RuntimeError("b")
    a.__cause__ = b
    b.__cause__ = a
    assert is_transient(a) is False


def test_ollama_suppressed_context_does_not_override_status() -> None:
    err = ollama_error(400)
    assert isinstance(err.__context__, httpx.HTTPStatusError)
    assert err.__suppress_context__
    assert is_transient(err) is False


# --------------------------------------------------------------------------- retry-after


def test_retry_after_seconds_from_openai_429() -> None:
    assert retry_after_seconds(openai_status(429, {"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(openai_status(429, {"retry-after": "1.5"})) == 1.5


def test_retry_after_ms_preferred() -> None:
    exc = openai_status(429, {"retry-after-ms": "250", "retry-after": "9"})
    assert retry_after_seconds(exc) == pytest.approx(0.25)


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    exc = openai_status(429, {"Retry-After": later})
    assert retry_after_seconds(exc, now=now.timestamp) == pytest.approx(30.0)
    past = format_datetime(datetime(2024, 12, 31, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(openai_status(429, {"Retry-After": past}), now=now.timestamp) == 0


def test_retry_after_from_httpx_and_wrapped_and_ollama() -> None:
    assert retry_after_seconds(httpx_status(429, {"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(httpx_status(503, {"Retry-After": "4"})) == 4.0
    assert retry_after_seconds(wrapped(openai_status(429, {"Retry-After": "5"}))) == 5.0
    # ollama raises `ResponseError(...) from None`; the header lives on the hidden context.
    assert retry_after_seconds(ollama_error(429, {"Retry-After": "6"})) == 6.0
    lc = OpenAIRateLimitError("r", response=hx2_response(429, {"Retry-After": "7"}), body=None)
    assert retry_after_seconds(lc) == 7.0


@pytest.mark.parametrize(
    "exc",
    [
        openai_status(429),  # no header
        openai_status(429, {"Retry-After": "soon"}),
        openai_status(429, {"Retry-After": "-3"}),
        openai_status(429, {"Retry-After": "nan"}),
        openai_status(400, {"Retry-After": "2"}),  # only meaningful on 429/503
        openai.APIConnectionError(request=hx2_request()),
        ValueError("x"),
        ollama.ResponseError("no response behind me", 429),
    ],
)
def test_retry_after_none(exc: BaseException) -> None:
    assert retry_after_seconds(exc) is None


# ------------------------------------------------------------------------------- backoff


def test_backoff_bounds_and_growth() -> None:
    rng = random.Random(42)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        samples = [backoff_delay(attempt, 0.5, 8.0, rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # full jitter: spread over the whole window, not clustered at the top
        assert min(samples) < ceiling * 0.2
        assert max(samples) > ceiling * 0.8


def test_backoff_deterministic_with_seed_and_edge_cases() -> None:
    a = [backoff_delay(n, 1.0, 30.0, random.Random(7)) for n in range(1, 6)]
    b = [backoff_delay(n, 1.0, 30.0, random.Random(7)) for n in range(1, 6)]
    assert a == b
    assert backoff_delay(0, 1.0, 30.0) <= 1.0  # attempt < 1 treated as the first retry
    assert backoff_delay(10_000, 1.0, 30.0) <= 30.0  # no overflow
    assert backoff_delay(3, 0.0, 30.0) == 0.0
    assert backoff_delay(3, 1.0, 0.0) == 0.0


# ------------------------------------------------------------------------ circuit breaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def state(breaker: CircuitBreaker) -> str:
    return breaker.state  # a call, so mypy does not narrow the property between asserts


def make_breaker(threshold: int = 3, cooldown: float = 30.0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(threshold, cooldown, name="ollama", clock=clock), clock


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    breaker, _ = make_breaker()
    assert state(breaker) == "closed"
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed" and breaker.allow()
    breaker.record_failure()
    assert state(breaker) == "open"
    assert not breaker.allow()
    assert breaker.seconds_until_half_open() == pytest.approx(30.0)


def test_success_resets_the_count() -> None:
    breaker, _ = make_breaker()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 2


def test_half_open_lets_exactly_one_trial_through_then_closes_on_success() -> None:
    breaker, clock = make_breaker()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(29.9)
    assert state(breaker) == "open" and not breaker.allow()
    clock.advance(0.1)
    assert state(breaker) == "half_open"
    assert breaker.seconds_until_half_open() == 0.0
    assert breaker.allow() is True
    assert breaker.allow() is False  # only one trial
    assert breaker.allow() is False
    breaker.record_success()
    assert state(breaker) == "closed"
    assert all(breaker.allow() for _ in range(5))


def test_half_open_failure_reopens_and_restarts_cooldown() -> None:
    breaker, clock = make_breaker(threshold=2, cooldown=10.0)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_failure()  # trial failed
    assert state(breaker) == "open"
    assert breaker.seconds_until_half_open() == pytest.approx(10.0)
    clock.advance(9.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


def test_trial_that_never_reports_back_is_replaced_after_another_cooldown() -> None:
    breaker, clock = make_breaker(threshold=1, cooldown=5.0)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow()
    clock.advance(4.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


def test_straggler_failure_while_open_does_not_extend_cooldown() -> None:
    breaker, clock = make_breaker(threshold=1, cooldown=10.0)
    breaker.record_failure()
    clock.advance(6.0)
    breaker.record_failure()
    assert breaker.seconds_until_half_open() == pytest.approx(4.0)


def test_check_raises_circuit_open_error() -> None:
    breaker, clock = make_breaker(threshold=1, cooldown=10.0)
    breaker.check()
    breaker.record_failure()
    clock.advance(2.5)
    with pytest.raises(CircuitOpenError) as info:
        breaker.check()
    assert info.value.tier == "ollama"
    assert info.value.retry_in_s == pytest.approx(7.5)
    assert "ollama" in str(info.value)
    assert is_transient(info.value) is False


def test_zero_cooldown_goes_straight_to_half_open() -> None:
    breaker, _ = make_breaker(threshold=1, cooldown=0.0)
    breaker.record_failure()
    assert state(breaker) == "half_open"
    assert breaker.allow() and not breaker.allow()


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, -1.0)


def test_release_frees_the_half_open_trial_without_moving_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow() is True and breaker.allow() is False
    breaker.release()
    assert breaker.state == "half_open" and breaker.consecutive_failures == 1
    assert breaker.allow() is True
