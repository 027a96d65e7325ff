"""Budgets on the orchestrator: the refused call is never sent, fail and wait modes, the spend
is journaled (a replay sees the same total), bad budgets are one-line errors."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

import ecl
from ecl.core import BudgetExceeded, InputValidationError, WorkflowState, error_from_dict
from ecl.llm import CompletionRequest, MockLlmProvider
from ecl.llm.budget import BudgetPolicy, parse_budget, parse_top_up
from ecl.testing import InMemoryDurableContext
from ecl.workflows import WorkflowCatalog
from tests.unit.workflows_support import PASS, RecordingRecorder, critique_orchestrator, no_sleep, scripted


def _mock() -> MockLlmProvider:
    return MockLlmProvider(responder=scripted([PASS]))


async def test_fail_mode_refuses_the_call_before_it_is_sent() -> None:
    llm = _mock()
    orchestrator = critique_orchestrator(llm, budget=BudgetPolicy(on_exceeded="fail"))
    rec = RecordingRecorder()
    result = await orchestrator.run(
        InMemoryDurableContext("w1"), "critique-revise", {"topic": "Rust", "budget_usd": "0.0001"}, recorder=rec
    )
    assert result.state is WorkflowState.FAILED
    assert llm.requests == []  # the refused call never reached the provider
    assert rec.calls == []
    error = error_from_dict(result.error or {})
    assert isinstance(error, BudgetExceeded)
    assert error.budget_usd == "0.0001" and error.spent_usd == "0" and error.step_id == "generate"
    assert error.call["model"] == "mock-model" and error.call["max_tokens"] > 0
    assert Decimal(error.call["worst_case_usd"]) > Decimal("0.0001")
    assert "\n" not in error.message


async def test_wait_mode_waits_on_the_budget_promise_and_the_spend_replays_exactly() -> None:
    llm = _mock()
    orchestrator = critique_orchestrator(llm)  # on_exceeded = "wait" by default
    rec = RecordingRecorder()
    ctx = InMemoryDurableContext("w2")
    # Enough tokens for generate's worst case, not for critique's on top of what generate used.
    data = {"topic": "Rust", "budget_tokens": 1150}
    run = asyncio.create_task(orchestrator.run(ctx, "critique-revise", data, recorder=rec))
    assert await ctx.until_waiting("budget") == "budget"
    assert len(llm.requests) == 1  # generate went out; critique was held back
    assert rec.state_names[-1] == "waiting_for_budget"
    waiting_error = rec.states[-1][1]["error"]
    assert waiting_error["type"] == "BudgetExceeded" and waiting_error["budget_tokens"] == 1150
    ctx.signal("budget", {"add_tokens": 5000})
    result = await asyncio.wait_for(run, 10)
    assert result.state is WorkflowState.COMPLETED
    assert len(llm.requests) == 2
    assert "step:critique" in ctx.journal and "step:critique#budget1" in ctx.journal
    recorded = sum((c["cost_usd"] for c in rec.calls), Decimal(0))
    assert result.cost_usd == recorded > 0
    # A replay (a restart, a Restate replay) rebuilds the same spend and sends nothing.
    again = await orchestrator.run(ctx.replay(), "critique-revise", data)
    assert again.cost_usd == result.cost_usd
    assert len(llm.requests) == 2


async def test_a_budget_from_the_definition_or_the_configuration() -> None:
    llm = _mock()
    orchestrator = critique_orchestrator(llm, budget=BudgetPolicy(usd=Decimal("0.0001"), on_exceeded="fail"))
    result = await orchestrator.run(InMemoryDurableContext("w3"), "critique-revise", {"topic": "Rust"})
    assert result.state is WorkflowState.FAILED and llm.requests == []
    # The input overrides the configured default.
    roomy = await orchestrator.run(InMemoryDurableContext("w4"), "critique-revise", {"topic": "Rust", "budget_usd": 5})
    assert roomy.state is WorkflowState.COMPLETED


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"budget_usd": "-1"}, "budget_usd = '-1': must be a number >= 0"),
        ({"budget_usd": "lots"}, "budget_usd = 'lots': not a number"),
        ({"budget_usd": True}, "budget_usd = True: not a number"),
        ({"budget_tokens": -5}, "budget_tokens = -5: must be >= 0"),
        ({"budget_tokens": 1.5}, "budget_tokens = 1.5: not a whole number"),
    ],
)
def test_bad_budgets_are_one_line_errors(data: dict[str, object], needle: str) -> None:
    with pytest.raises(InputValidationError) as info:
        parse_budget(data)
    assert needle in info.value.message
    assert "\n" not in info.value.message


def test_top_ups() -> None:
    assert parse_top_up({"add_usd": "2"}) == (Decimal(2), 0)
    assert parse_top_up({"add_tokens": 10, "add_usd": 0.5}) == (Decimal("0.5"), 10)
    with pytest.raises(InputValidationError):
        parse_top_up({"decision": "approve"})
    with pytest.raises(InputValidationError):
        parse_top_up({"add_usd": "-2"})


async def test_a_bad_budget_in_the_input_fails_the_run_naming_it() -> None:
    llm = _mock()
    result = await critique_orchestrator(llm).run(
        InMemoryDurableContext("w5"), "critique-revise", {"topic": "Rust", "budget_usd": "x"}
    )
    assert result.state is WorkflowState.FAILED
    assert "budget_usd = 'x'" in (result.error or {})["message"]
    assert llm.requests == []


# ---------------------------------------------------------------- code-first workflows


def _code_runner(llm: MockLlmProvider, policy: BudgetPolicy | None = None, *workflows: object) -> Any:
    catalog = WorkflowCatalog.build(entry_points=False, workflows=workflows)
    orchestrator = catalog.orchestrator(llm, budget=policy)
    orchestrator.graph.executor._sleep = no_sleep
    return orchestrator


async def test_code_first_fail_mode_refuses_the_call_before_it_is_sent() -> None:
    llm = _mock()
    orchestrator = _code_runner(llm, BudgetPolicy(on_exceeded="fail"))
    rec = RecordingRecorder()
    data = {"topic": "Rust", "budget_usd": "0.0001"}
    result = await orchestrator.run(InMemoryDurableContext("c1"), "critique-revise-py", data, recorder=rec)
    assert result.state is WorkflowState.FAILED
    assert llm.requests == [] and rec.calls == []
    error = error_from_dict(result.error or {})
    assert isinstance(error, BudgetExceeded)
    assert error.budget_usd == "0.0001" and error.spent_usd == "0" and error.step_id == "generate"
    assert error.call["model"] == "mock-model"


async def test_code_first_wait_mode_waits_on_the_budget_promise_and_the_spend_replays_exactly() -> None:
    llm = _mock()
    orchestrator = _code_runner(llm)
    rec = RecordingRecorder()
    ctx = InMemoryDurableContext("c2")
    data = {"topic": "Rust", "budget_tokens": 1150}  # as the graph test: generate fits, critique not on top
    run = asyncio.create_task(orchestrator.run(ctx, "critique-revise-py", data, recorder=rec))
    assert await ctx.until_waiting("budget") == "budget"
    assert len(llm.requests) == 1
    assert rec.state_names[-1] == "waiting_for_budget"
    assert rec.states[-1][1]["error"]["budget_tokens"] == 1150
    ctx.signal("budget", {"add_tokens": 5000})
    result = await asyncio.wait_for(run, 10)
    assert result.state is WorkflowState.COMPLETED
    assert len(llm.requests) == 2
    assert "step:critique" in ctx.journal and "step:critique#budget1" in ctx.journal
    recorded = sum((c["cost_usd"] for c in rec.calls), Decimal(0))
    assert result.cost_usd == recorded > 0
    again = await orchestrator.run(ctx.replay(), "critique-revise-py", data)
    assert again.cost_usd == result.cost_usd and again.state is WorkflowState.COMPLETED
    assert len(llm.requests) == 2


@ecl.step(name="ask")
async def ask(ctx: ecl.StepContext, n: int) -> str:
    """One LLM call."""
    reply = await ctx.llm.complete(CompletionRequest.of(f"question {n}", max_tokens=100))
    return reply.content


@ecl.workflow("asking", budget_tokens=10)
async def asking(ctx: ecl.WorkflowContext, count: int) -> list[str]:
    """``count`` questions at once."""
    return list(await asyncio.gather(*(ask(ctx, n=i) for i in range(count))))


async def test_a_code_first_budget_from_the_decorator_the_input_or_the_configuration() -> None:
    llm = MockLlmProvider(["an answer"])
    tiny = _code_runner(llm, BudgetPolicy(on_exceeded="fail"), asking)
    refused = await tiny.run(InMemoryDurableContext("c3"), "asking", {"count": 1})
    assert refused.state is WorkflowState.FAILED and llm.requests == []
    assert error_from_dict(refused.error or {}).budget_tokens == 10  # type: ignore[attr-defined]
    roomy = await tiny.run(InMemoryDurableContext("c4"), "asking", {"count": 1, "budget_tokens": 500})
    assert roomy.state is WorkflowState.COMPLETED and roomy.output == ["an answer"]
    configured = _code_runner(llm, BudgetPolicy(usd=Decimal("0.0001"), on_exceeded="fail"))
    result = await configured.run(InMemoryDurableContext("c5"), "critique-revise-py", {"topic": "Rust"})
    assert result.state is WorkflowState.FAILED and len(llm.requests) == 1
    bad = await configured.run(InMemoryDurableContext("c6"), "critique-revise-py", {"topic": "R", "budget_usd": "x"})
    assert bad.state is WorkflowState.FAILED and "budget_usd = 'x'" in (bad.error or {})["message"]


async def test_concurrent_calls_never_cross_the_budget_together_and_share_one_top_up_round() -> None:
    llm = MockLlmProvider(["an answer"], delay=0.05)
    orchestrator = _code_runner(llm, None, asking)
    rec = RecordingRecorder()
    ctx = InMemoryDurableContext("c7")
    # Room for one call's worst case (~20 input + 100 output tokens), not two at once.
    data = {"count": 4, "budget_tokens": 210}
    run = asyncio.create_task(orchestrator.run(ctx, "asking", data, recorder=rec))
    assert await ctx.until_waiting("budget") == "budget"
    await asyncio.sleep(0.2)  # the calls let through finish; the others join the same round
    sent = len(llm.requests)
    assert sent == 1  # a call in flight holds its worst case (120 tokens): no second one fits
    assert ctx.waiting == {"budget"}
    ctx.signal("budget", {"add_tokens": 1000})  # one top-up resumes every refused step
    result = await asyncio.wait_for(run, 10)
    assert result.state is WorkflowState.COMPLETED and result.output == ["an answer"] * 4
    assert len(llm.requests) == 4
    assert "budget#2" not in ctx.promises
    reruns = sorted(name for name in ctx.journal if name.endswith("#budget1"))
    assert len(reruns) == 4 - sent
    # Replayed in journal order (checked): the same spend, nothing sent again.
    again = await orchestrator.run(ctx.replay(), "asking", data)
    assert again.cost_usd == result.cost_usd and again.tokens == result.tokens
    assert len(llm.requests) == 4


async def test_a_bad_top_up_fails_every_step_waiting_on_the_round() -> None:
    llm = MockLlmProvider(["an answer"], delay=0.05)
    orchestrator = _code_runner(llm, None, asking)
    ctx = InMemoryDurableContext("c8")
    run = asyncio.create_task(orchestrator.run(ctx, "asking", {"count": 3, "budget_tokens": 210}))
    assert await ctx.until_waiting("budget") == "budget"
    await asyncio.sleep(0.2)
    ctx.signal("budget", {"add_usd": "-1"})
    result = await asyncio.wait_for(run, 10)  # no refused step is left waiting
    assert result.state is WorkflowState.FAILED
    assert (result.error or {})["step_id"] == "budget"
    assert "add_usd = '-1'" in (result.error or {})["message"]
    assert len(llm.requests) == 1
