"""Timeouts (issue 13, item 7): the per-request LLM timeout and the per-attempt step deadline,
against the fake Anthropic server over HTTP, the real SDK and the embedded engine."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import ecl
from ecl.config import Settings, load_settings
from ecl.core import DefinitionError, RetryPolicy, StepTimeoutError, WorkflowState
from ecl.engines.factory import build_provider_from
from ecl.llm import CompletionRequest, MockLlmProvider
from ecl.steps import StepExecutor, StepRegistry
from ecl.testing import FakeAnthropicServer, InMemoryDurableContext, Reply
from tests.unit.workflows_support import AddOne, RecordingRecorder, graph_orchestrator

pytestmark = pytest.mark.timeout(300)

REQUEST = CompletionRequest.of("Say something.")
QUICK = RetryPolicy(max_attempts=2, initial_delay=timedelta(milliseconds=10))


def _settings(tmp_path: Path, server: FakeAnthropicServer, **env: str) -> Settings:
    return load_settings(
        environ={
            "ECL_LLM_PROVIDER": "anthropic",
            "ECL_LLM_MODEL": "claude-sonnet-5-5",
            "ECL_LLM_BASE_URL": server.url,
            "ECL_CLAUDE_API_KEY": "sk-test",
            "ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"),
            "ECL_LLM__RETRY__INITIAL_DELAY": "0.01",
            **env,
        },
        cwd=tmp_path,
    )


async def test_llm_timeout_seconds_bounds_each_request_and_the_next_attempt_succeeds(tmp_path: Path) -> None:
    with FakeAnthropicServer() as server:
        server.enqueue(Reply(text="too late", delay=3.0))
        server.enqueue("in time")
        llm = build_provider_from(_settings(tmp_path, server, ECL_LLM__TIMEOUT_SECONDS="0.5"))
        started = time.monotonic()
        try:
            reply = await llm.complete(REQUEST)
        finally:
            await llm.close()  # type: ignore[attr-defined]
        elapsed = time.monotonic() - started
        assert reply.content == "in time"
        assert server.count() == 2
        # The first request was cut at 0.5 s, not left for the 3 s the server took.
        assert 0.5 <= elapsed < 2.5, elapsed
        # The retry went out while the server was still sleeping on the first request.
        assert server.requests[1].time - server.requests[0].time < 2.5


@ecl.step(timeout=0.5, retry=QUICK)
async def ask(ctx: ecl.StepContext, topic: str) -> str:
    """One LLM call."""
    reply = await ctx.llm.complete(CompletionRequest.of(f"About {topic}"))
    return reply.content


@ecl.workflow("ask-once")
async def ask_once(ctx: ecl.WorkflowContext, topic: str) -> str:
    """Ask once."""
    return await ask(ctx, topic)


@ecl.step(timeout=0.5, retry=RetryPolicy.none())
async def ask_strict(ctx: ecl.StepContext, topic: str) -> str:
    """One LLM call, one attempt."""
    reply = await ctx.llm.complete(CompletionRequest.of(f"About {topic}"))
    return reply.content


@ecl.workflow("ask-strict")
async def ask_strict_flow(ctx: ecl.WorkflowContext, topic: str) -> str:
    """Ask once, no retry."""
    return await ask_strict(ctx, topic)


def _rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


async def test_a_step_over_its_deadline_fails_with_step_timeout_and_its_retry_policy_runs_it_again(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ecl.db'}"
    with FakeAnthropicServer() as server:
        server.enqueue(Reply(text="too late", delay=3.0))
        server.enqueue("in time")
        settings = _settings(tmp_path, server)
        async with ecl.open_engine(
            database_url=url, workflows=[ask_once], llm="anthropic", settings=settings
        ) as engine:
            started = time.monotonic()
            result = await engine.run("ask-once", {"topic": "clocks"}, workflow_id="t-1")
            elapsed = time.monotonic() - started
    assert result.state is WorkflowState.COMPLETED, result.error
    assert result.output == "in time"
    assert elapsed < 2.5, elapsed  # the slow attempt was cut at 0.5 s
    rows = _rows(url, "SELECT attempt, state, error FROM step_executions WHERE workflow_id='t-1' ORDER BY attempt")
    assert [(r[0], r[1]) for r in rows] == [(1, "failed"), (2, "completed")]
    error = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert error["type"] == "StepTimeoutError"
    assert error["timeout_seconds"] == 0.5
    assert "exceeded its timeout of 0.5 s" in error["message"]
    # The request cut short is settled as interrupted (the provider may bill it), not left pending.
    calls = _rows(url, "SELECT outcome FROM llm_calls WHERE workflow_id='t-1' ORDER BY created_at")
    assert [c[0] for c in calls] == ["interrupted", "ok"]


async def test_without_retries_the_workflow_fails_with_the_named_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ecl.db'}"
    with FakeAnthropicServer() as server:
        server.enqueue(Reply(text="too late", delay=3.0))
        settings = _settings(tmp_path, server)
        async with ecl.open_engine(
            database_url=url, workflows=[ask_strict_flow], llm="anthropic", settings=settings
        ) as engine:
            result = await engine.run("ask-strict", {"topic": "clocks"}, workflow_id="t-2")
        assert server.count() == 1
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == "StepTimeoutError"
    assert result.error["step_id"] == "ask_strict"
    rows = _rows(url, "SELECT state FROM workflows WHERE id='t-2'")
    assert rows[0][0] == "failed"


class Slow(AddOne):
    """AddOne that takes 5 s."""

    id = "slow"
    delay = 5.0


async def test_a_graph_step_timeout_is_journaled_and_replays_the_same_failure() -> None:
    definition = {
        "id": "slowly",
        "name": "Slowly",
        "steps": [{"step_id": "a", "step": "slow", "timeout": 0.2, "input": {"value": "$input.n"}}],
    }
    orch = graph_orchestrator(definition, extra=[Slow()])
    recorder = RecordingRecorder()
    ctx = InMemoryDurableContext()
    started = time.monotonic()
    result = await orch.run(ctx, "slowly", {"n": 1}, recorder=recorder)
    assert time.monotonic() - started < 3.0
    assert result.state is WorkflowState.FAILED
    assert result.error is not None
    assert result.error["type"] == "StepTimeoutError"
    assert result.error["step_id"] == "slow"  # errors name the implementation, as every step error does
    # Retried by the step's policy (3 attempts), each cut at 0.2 s.
    assert [f["error"]["type"] for f in recorder.finished] == ["StepTimeoutError"] * 3
    assert ctx.journal["step:a"][0] == "error"
    again = await orch.run(ctx.replay(), "slowly", {"n": 1})
    assert again.error == result.error


@ecl.step(timeout=5.0, retry=RetryPolicy.none())
async def own_timeout(ctx: ecl.StepContext, n: int) -> int:
    """Raises TimeoutError itself, at once."""
    raise TimeoutError("mine")


async def test_a_step_that_raises_its_own_timeout_error_is_not_over_its_deadline() -> None:
    executor = StepExecutor(StepRegistry([own_timeout.step]), MockLlmProvider(["unused"]))
    with pytest.raises(ecl.StepError) as info:
        await executor.execute("own_timeout", {"n": 1}, workflow_id="w")
    assert not isinstance(info.value, StepTimeoutError)
    assert "raised TimeoutError: mine" in str(info.value)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan")])
def test_a_bad_step_timeout_is_a_one_line_definition_error(bad: float) -> None:
    with pytest.raises(DefinitionError, match="timeout=") as info:

        @ecl.step(timeout=bad)
        async def never(ctx: ecl.StepContext) -> int:
            return 1

    assert "\n" not in str(info.value)


def test_a_bad_graph_step_timeout_names_the_field() -> None:
    from pydantic import ValidationError

    from ecl.workflows.definition import StepDefinition

    with pytest.raises(ValidationError, match="timeout"):
        StepDefinition.model_validate({"step_id": "a", "timeout": -1})
