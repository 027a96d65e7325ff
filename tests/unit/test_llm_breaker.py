"""The circuit breaker: per model, half-open lets exactly one trial through, an open circuit
is waited out (not a failure for good), state visible in the metrics."""

from __future__ import annotations

import asyncio

import pytest

from ecl.core import LlmError
from ecl.core.waiting import CIRCUIT_OPEN, rate_limit_wait
from ecl.llm import BreakerBoard, BreakerProvider, CircuitOpenError, CompletionRequest, MockLlmProvider
from ecl.llm.ratelimit import on_wait
from ecl.observability import metrics

REQ = CompletionRequest.of("hi")
FAIL = LlmError("overloaded", kind="overloaded", retryable=True, status_code=529)


def _value(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


async def test_half_open_lets_exactly_one_trial_through_and_refuses_the_rest() -> None:
    now = [0.0]
    board = BreakerBoard(failure_threshold=2, window=60, open_for=10, clock=lambda: now[0])
    gate = asyncio.Event()
    calls = 0

    class Slow:
        name = "fake"
        model = "m-trial"

        async def complete(self, request: CompletionRequest) -> object:
            nonlocal calls
            calls += 1
            if calls <= 2:
                raise FAIL
            await gate.wait()
            return "recovered"

    llm = BreakerProvider(Slow(), board=board)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(LlmError):
            await llm.complete(REQ)
    breaker = board.get("fake", "m-trial")
    assert breaker.state == "open"
    assert _value("ecl_llm_breaker_state", provider="fake", model="m-trial") == 2
    with pytest.raises(CircuitOpenError) as refused:
        await llm.complete(REQ)
    assert refused.value.retryable and refused.value.retry_after == pytest.approx(10)
    now[0] = 11.0
    trial = asyncio.create_task(llm.complete(REQ))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert calls == 3  # the trial reached the provider
    for _ in range(3):  # everyone else is refused at once, not queued behind the trial
        with pytest.raises(CircuitOpenError):
            await llm.complete(REQ)
    assert calls == 3
    gate.set()
    assert await trial == "recovered"
    assert breaker.state == "closed"
    assert breaker.transitions == ["open", "half_open", "closed"]
    assert _value("ecl_llm_breaker_state", provider="fake", model="m-trial") == 0
    assert _value("ecl_llm_breaker_transitions_total", provider="fake", model="m-trial", state="open") == 1


async def test_a_failed_trial_opens_the_circuit_again() -> None:
    now = [0.0]
    board = BreakerBoard(failure_threshold=1, window=60, open_for=5, clock=lambda: now[0])
    llm = BreakerProvider(MockLlmProvider([FAIL, FAIL, "ok"], model="m-reopen"), board=board)
    with pytest.raises(LlmError):
        await llm.complete(REQ)
    now[0] = 6.0
    with pytest.raises(LlmError) as again:
        await llm.complete(REQ)
    assert not isinstance(again.value, CircuitOpenError)  # the trial went out and failed
    assert board.get("mock", "m-reopen").state == "open"
    assert board.get("mock", "m-reopen").remaining == pytest.approx(5)


async def test_an_open_circuit_is_waited_out_instead_of_failing() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    board = BreakerBoard(failure_threshold=1, window=60, open_for=30, clock=lambda: now[0])
    mock = MockLlmProvider([FAIL, "after the wait"], model="m-wait")
    llm = BreakerProvider(mock, board=board, max_wait=60, sleep=sleep)
    with pytest.raises(LlmError):
        await llm.complete(REQ)
    now[0] = 4.0
    response = await llm.complete(REQ)
    assert response.content == "after the wait"
    assert waits == [pytest.approx(26.0)]
    assert len(mock.requests) == 2
    assert _value("ecl_llm_breaker_refusals_total", provider="mock", model="m-wait") == 1


async def test_a_wait_for_an_open_circuit_is_told_and_so_is_its_end() -> None:
    """What ``ecl status`` shows as ``waiting: {"reason": "breaker", ...}`` (the step layer
    turns these calls into the workflow's ``waiting``)."""
    now = [0.0]
    heard: list[tuple[str, float, str]] = []

    async def sleep(seconds: float) -> None:
        heard.append(("slept", seconds, ""))
        now[0] += seconds

    async def hear(why: str, seconds: float, limiter: str) -> None:
        heard.append((why, seconds, limiter))

    board = BreakerBoard(failure_threshold=1, window=60, open_for=30, clock=lambda: now[0])
    llm = BreakerProvider(
        MockLlmProvider([FAIL, "after the wait"], model="m-told"), board=board, max_wait=60, sleep=sleep
    )
    with pytest.raises(LlmError):
        await llm.complete(REQ)
    now[0] = 4.0
    token = on_wait.set(hear)
    try:
        assert (await llm.complete(REQ)).content == "after the wait"
    finally:
        on_wait.reset(token)
    assert heard == [
        (CIRCUIT_OPEN, pytest.approx(26.0), "mock/m-told"),
        ("slept", pytest.approx(26.0), ""),
        ("", 0.0, "mock/m-told"),
    ]
    shown = rate_limit_wait("mock/m-told", CIRCUIT_OPEN, 26.0, "critique")
    assert (shown["reason"], shown["model"], shown["seconds"]) == ("breaker", "mock/m-told", 26.0)
    assert rate_limit_wait("mock/m-told", "requests per minute", 2.0, None)["reason"] == "rate_limit"


async def test_waiting_is_bounded_by_max_wait() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    board = BreakerBoard(failure_threshold=1, window=60, open_for=300, clock=lambda: now[0])
    llm = BreakerProvider(MockLlmProvider([FAIL, "never"], model="m-bounded"), board=board, max_wait=60, sleep=sleep)
    with pytest.raises(LlmError):
        await llm.complete(REQ)
    with pytest.raises(CircuitOpenError) as info:
        await llm.complete(REQ)
    assert info.value.retryable


async def test_each_model_has_its_own_breaker() -> None:
    board = BreakerBoard(failure_threshold=1)
    llm = BreakerProvider(MockLlmProvider([FAIL, "ok"], model="m-a"), board=board)
    with pytest.raises(LlmError):
        await llm.complete(REQ)
    other = CompletionRequest(messages=REQ.messages, model="m-b")
    assert (await llm.complete(other)).content == "ok"
    assert board.snapshot()["mock/m-a"]["state"] == "open"
    assert board.snapshot()["mock/m-b"]["state"] == "closed"
    assert board.degraded
