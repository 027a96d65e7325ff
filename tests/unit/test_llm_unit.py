"""Mock provider, retry policy decisions and the circuit breaker, in process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ecl.core import LlmError, RetryPolicy
from ecl.llm import (
    BreakerProvider,
    CircuitBreaker,
    CircuitOpenError,
    CompletionRequest,
    MockLlmProvider,
    RetryingProvider,
    parse_retry_after,
)

REQ = CompletionRequest.of("hi")


async def test_mock_returns_in_order_and_cycles() -> None:
    mock = MockLlmProvider(["a", "b"])
    got = [(await mock.complete(REQ)).content for _ in range(5)]
    assert got == ["a", "b", "a", "b", "a"]
    assert len(mock.requests) == 5


async def test_mock_raises_scripted_errors() -> None:
    mock = MockLlmProvider([LlmError("nope", kind="auth")])
    with pytest.raises(LlmError):
        await mock.complete(REQ)


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after(None) is None


async def test_retry_waits_backoff_and_retry_after() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    mock = MockLlmProvider(
        [
            LlmError("busy", kind="rate_limited", retryable=True, retry_after=5.0),
            LlmError("boom", kind="server", retryable=True),
            "ok",
        ]
    )
    policy = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=1))
    result = await RetryingProvider(mock, policy, sleep=sleep).complete(REQ)
    assert result.content == "ok"
    assert waits == [5.0, 2.0]


async def test_circuit_opens_half_opens_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, window=60, open_for=30, clock=lambda: now[0])
    mock = MockLlmProvider(
        [
            LlmError("x", kind="server", retryable=True),
            LlmError("x", kind="server", retryable=True),
            "recovered",
        ]
    )
    llm = BreakerProvider(mock, breaker)
    for _ in range(2):
        with pytest.raises(LlmError):
            await llm.complete(REQ)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        await llm.complete(REQ)
    assert len(mock.requests) == 2  # the open circuit did not call the provider
    now[0] = 31.0
    assert breaker.state == "half_open"
    assert (await llm.complete(REQ)).content == "recovered"
    assert breaker.state == "closed"
    assert breaker.transitions == ["open", "half_open", "closed"]


async def test_auth_errors_do_not_trip_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    llm = BreakerProvider(MockLlmProvider([LlmError("bad key", kind="auth")]), breaker)
    with pytest.raises(LlmError):
        await llm.complete(REQ)
    assert breaker.state == "closed"
