"""Model fallback (issue 13, item 5) against the fake Anthropic server over HTTP: a 529 storm
on the primary model opens its breaker, the fallback model answers and is recorded; the
breaker turns half-open after the configured time and closes on success."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import ecl
from ecl.config import Settings, load_settings
from ecl.core import ConfigError, LlmError, RetryPolicy, Success, WorkflowState
from ecl.engines.factory import build_breakers, build_prices, build_provider_from
from ecl.llm import CompletionRequest, MockLlmProvider
from ecl.steps import StepContext, StepRegistry
from ecl.testing import FakeAnthropicServer, InMemoryDurableContext, ReceivedRequest, Reply
from ecl.workflows import DefinitionRegistry, WorkflowOrchestrator, parse_definition
from tests.e2e.helpers import Ecl
from tests.unit.workflows_support import Num

pytestmark = pytest.mark.timeout(300)

PRIMARY = "claude-sonnet-4-6"
FALLBACK = "claude-haiku-4-5"
REQUEST = CompletionRequest.of("Say something.")


def _settings(tmp_path: Path, server: FakeAnthropicServer, **env: str) -> Settings:
    return load_settings(
        environ={
            "ECL_LLM_PROVIDER": "anthropic",
            "ECL_LLM_MODEL": PRIMARY,
            "ECL_LLM_BASE_URL": server.url,
            "ECL_CLAUDE_API_KEY": "sk-test",
            "ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"),
            "ECL_LLM__RETRY__INITIAL_DELAY": "0.01",
            "ECL_LLM__FALLBACK": f"{PRIMARY} -> {FALLBACK}",
            **env,
        },
        cwd=tmp_path,
    )


class Storm:
    """529 for the primary model while on; every other request answers with its model's name."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.on.set()

    def __call__(self, request: ReceivedRequest) -> Reply:
        model = str(request.json.get("model"))
        if self.on.is_set() and model == PRIMARY:
            return Reply(status=529)
        return Reply(text=f"from {model}")


def _model(request: ReceivedRequest) -> str:
    return str(request.json.get("model"))


async def test_a_529_storm_opens_the_breaker_and_the_fallback_takes_over_until_it_closes(tmp_path: Path) -> None:
    storm = Storm()
    with FakeAnthropicServer(responder=storm) as server:
        settings = _settings(tmp_path, server, ECL_LLM__BREAKER__OPEN_SECONDS="1")
        board = build_breakers(settings)
        llm = build_provider_from(settings, breakers=board)
        try:
            # Call 1: three 529s (llm.retry.max_attempts) on the primary, then the fallback answers.
            first = await llm.complete(REQUEST)
            assert (first.content, first.model) == (f"from {FALLBACK}", FALLBACK)
            assert [_model(r) for r in server.requests] == [PRIMARY] * 3 + [FALLBACK]
            assert board.snapshot()[f"anthropic/{PRIMARY}"]["state"] == "closed"
            # Call 2: failures 4 and 5 open the circuit; the third attempt does not wait for it.
            started = time.monotonic()
            second = await llm.complete(REQUEST)
            assert time.monotonic() - started < 0.9  # less than the open time: nothing waited
            assert second.model == FALLBACK
            assert server.count(lambda r: _model(r) == PRIMARY) == 5
            breaker = board.get("anthropic", PRIMARY)
            assert breaker.state == "open"
            # Call 3: the open circuit is skipped without a request to the primary.
            third = await llm.complete(REQUEST)
            assert third.model == FALLBACK
            assert server.count(lambda r: _model(r) == PRIMARY) == 5
            # After llm.breaker.open_seconds the circuit is half-open; the trial succeeds, it closes.
            storm.on.clear()
            deadline = time.monotonic() + 30
            while breaker.state != "half_open":
                assert time.monotonic() < deadline, breaker.snapshot()
                time.sleep(0.05)
            fourth = await llm.complete(REQUEST)
            assert fourth.model == PRIMARY
            assert breaker.state == "closed"
            assert breaker.transitions == ["open", "half_open", "closed"]
        finally:
            await llm.close()  # type: ignore[attr-defined]


async def test_a_non_retryable_error_does_not_fall_back(tmp_path: Path) -> None:
    with FakeAnthropicServer() as server:
        server.enqueue_fault(400)
        llm = build_provider_from(_settings(tmp_path, server))
        try:
            with pytest.raises(LlmError) as info:
                await llm.complete(REQUEST)
        finally:
            await llm.close()  # type: ignore[attr-defined]
        assert info.value.kind == "bad_request"
        assert [_model(r) for r in server.requests] == [PRIMARY]


async def test_a_request_chain_replaces_the_configured_one_and_the_last_error_goes_up(tmp_path: Path) -> None:
    with FakeAnthropicServer(responder=lambda r: Reply(status=500)) as server:
        llm = build_provider_from(_settings(tmp_path, server, ECL_LLM__RETRY__MAX_ATTEMPTS="1"))
        try:
            with pytest.raises(LlmError) as info:
                await llm.complete(REQUEST.model_copy(update={"fallback": ["claude-opus-4-6", FALLBACK]}))
        finally:
            await llm.close()  # type: ignore[attr-defined]
        assert info.value.status_code == 500
        assert [_model(r) for r in server.requests] == [PRIMARY, "claude-opus-4-6", FALLBACK]


@ecl.step(retry=RetryPolicy.none(), fallback=[FALLBACK])
async def answer(ctx: ecl.StepContext, question: str) -> str:
    """One LLM call (falls back to haiku)."""
    reply = await ctx.llm.complete(CompletionRequest.of(question))
    return reply.content


@ecl.workflow("answer-once")
async def answer_once(ctx: ecl.WorkflowContext, question: str) -> str:
    """One step."""
    return await answer(ctx, question)


def _rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


async def test_the_model_that_answered_is_recorded_and_journaled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ecl.db'}"
    with FakeAnthropicServer(responder=Storm()) as server:
        # No configured chain: the step's own fallback applies.
        settings = _settings(tmp_path, server, ECL_LLM__FALLBACK="")
        async with ecl.open_engine(
            database_url=url, workflows=[answer_once], llm="anthropic", settings=settings
        ) as engine:
            result = await engine.run("answer-once", {"question": "why?"}, workflow_id="f-1")
        assert [_model(r) for r in server.requests] == [PRIMARY] * 3 + [FALLBACK]
    assert result.state is WorkflowState.COMPLETED, result.error
    assert result.output == f"from {FALLBACK}"
    assert result.steps[0].llm_models == [FALLBACK]
    calls = _rows(url, "SELECT model, outcome, cost_usd FROM llm_calls WHERE workflow_id='f-1'")
    assert [(c[0], c[1]) for c in calls] == [(FALLBACK, "ok")]
    assert float(calls[0][2]) > 0  # priced as the fallback model
    journal = _rows(url, "SELECT payload FROM journal_entries WHERE workflow_id='f-1' AND name='step:answer'")
    raw = journal[0][0]
    entry = raw if isinstance(raw, dict) else json.loads(raw)
    assert FALLBACK in json.dumps(entry)


def test_an_unknown_fallback_model_is_a_one_line_config_error(tmp_path: Path) -> None:
    with FakeAnthropicServer() as server:
        settings = _settings(tmp_path, server, ECL_LLM__FALLBACK="claude-nope-9")
        with pytest.raises(ConfigError) as info:
            build_prices(settings)
        message = str(info.value)
        assert "llm.fallback" in message and "claude-nope-9" in message and "\n" not in message
        # Allowed when unpriced models are.
        build_prices(_settings(tmp_path, server, ECL_LLM__FALLBACK="claude-nope-9", ECL_LLM__ALLOW_UNPRICED="true"))
        # Through the real executable: one line, nothing sent.
        done = Ecl(tmp_path, server.url).run(
            "run",
            "critique-revise",
            "--topic",
            "x",
            "--llm",
            "anthropic",
            timeout=300,
            ECL_LLM__FALLBACK="claude-nope-9",
        )
        assert done.returncode != 0
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "llm.fallback" in done.stderr and "claude-nope-9" in done.stderr
        assert server.count() == 0


async def test_an_unknown_step_fallback_model_names_the_step(tmp_path: Path) -> None:
    @ecl.step(fallback=["claude-nope-9"])
    async def odd(ctx: ecl.StepContext, question: str) -> str:
        """Never runs."""
        return question

    @ecl.workflow("odd-flow")
    async def odd_flow(ctx: ecl.WorkflowContext, question: str) -> str:
        """Never runs."""
        return await odd(ctx, question)

    with FakeAnthropicServer() as server:
        settings = _settings(tmp_path, server, ECL_LLM__FALLBACK="")
        with pytest.raises(ConfigError) as info:
            async with ecl.open_engine(
                database_url=f"sqlite:///{tmp_path / 'x.db'}",
                workflows=[odd, odd_flow],
                llm="anthropic",
                settings=settings,
            ):
                pass
    assert "step odd: fallback" in str(info.value)
    assert "claude-nope-9" in str(info.value)


class Ask(ecl.Step[Num, Num]):
    """Asks the LLM once."""

    id = "ask"

    async def execute(self, ctx: StepContext, input: Num) -> Success[Num]:
        """One call."""
        await ctx.llm.complete(CompletionRequest.of(f"n={input.value}"))
        return Success(Num(value=input.value))


async def test_a_definition_names_the_chain_and_a_graph_step_overrides_it() -> None:
    definition = {
        "id": "chained",
        "name": "Chained",
        "options": {"fallback": [FALLBACK]},
        "steps": [
            {"step_id": "a", "step": "ask", "input": {"value": "$input.n"}},
            {
                "step_id": "b",
                "step": "ask",
                "depends_on": ["a"],
                "fallback": ["claude-opus-4-6"],
                "input": {"value": 2},
            },
        ],
    }
    steps = StepRegistry([Ask()])
    llm = MockLlmProvider(["x", "y"])
    orch = WorkflowOrchestrator(DefinitionRegistry(steps, [parse_definition(definition, steps)]), steps, llm)
    result = await orch.run(InMemoryDurableContext(), "chained", {"n": 1})
    assert result.state is WorkflowState.COMPLETED, result.error
    assert [r.fallback for r in llm.requests] == [[FALLBACK], ["claude-opus-4-6"]]
