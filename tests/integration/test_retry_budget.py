"""One retry budget per LLM call, and no retry sooner than the server's ``retry-after``.

The whole path: the built-in workflow's steps (each with its own step retry policy) call the
real ``anthropic`` SDK, wrapped by ECL's retry and breaker, against the fake server over
loopback HTTP; the fake counts the requests it received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from ecl.core import RetryPolicy, WorkflowResult, WorkflowState
from ecl.llm import LlmProvider, build_provider
from ecl.testing import FakeAnthropicServer, InMemoryDurableContext
from ecl.workflows import DefinitionRegistry, WorkflowOrchestrator, builtin_steps

LLM_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(milliseconds=10), max_delay=timedelta(milliseconds=50))


@pytest.fixture
async def llm(fake_anthropic: FakeAnthropicServer) -> AsyncIterator[LlmProvider]:
    provider = build_provider(
        "anthropic", model="claude-test", api_key="sk-test", base_url=fake_anthropic.url, retry=LLM_RETRY
    )
    yield provider
    await provider.close()  # type: ignore[attr-defined]


async def _run(llm: LlmProvider) -> tuple[WorkflowResult, list[float]]:
    step_waits: list[float] = []

    async def sleep(seconds: float) -> None:  # step-level backoff, recorded instead of slept
        step_waits.append(seconds)

    orchestrator = WorkflowOrchestrator(DefinitionRegistry.with_builtins(), builtin_steps(), llm, sleep=sleep)
    result = await orchestrator.run(InMemoryDurableContext(), "critique-revise", {"topic": "retries"})
    return result, step_waits


async def test_a_provider_that_always_fails_gets_one_budget_of_requests(
    fake_anthropic: FakeAnthropicServer, llm: LlmProvider
) -> None:
    for _ in range(20):
        fake_anthropic.enqueue_fault(500)
    result, step_waits = await _run(llm)
    assert result.state is WorkflowState.FAILED
    assert fake_anthropic.count() == LLM_RETRY.max_attempts  # not 3 step attempts x 3 requests
    assert step_waits == []
    assert result.error is not None
    assert result.error["type"] == "LlmError"
    assert result.error["attempts"] == 3
    assert "gave up after 3 requests" in result.error["message"]


async def test_a_step_retry_never_undercuts_retry_after(fake_anthropic: FakeAnthropicServer, llm: LlmProvider) -> None:
    for _ in range(20):
        fake_anthropic.enqueue_fault(429, headers={"retry-after": "120"})
    result, step_waits = await _run(llm)
    assert result.state is WorkflowState.FAILED
    assert fake_anthropic.count() == 1  # nobody re-sent it before the 120 s were up
    assert step_waits == []
    assert result.error is not None
    assert "asked to wait 120 s" in result.error["message"]


async def test_a_step_retry_still_retries_the_steps_own_failures(
    fake_anthropic: FakeAnthropicServer, llm: LlmProvider
) -> None:
    # generate answers; critique answers something that is not JSON, then a valid verdict.
    fake_anthropic.enqueue("a draft", "not json at all", '{"decision": "pass", "critique": "fine"}')
    result, step_waits = await _run(llm)
    assert result.state is WorkflowState.COMPLETED, result.error
    assert fake_anthropic.count() == 3
    assert step_waits == [1.0]
