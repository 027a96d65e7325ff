"""Budgets on the orchestrator: the refused call is never sent, fail and wait modes, the spend
is journaled (a replay sees the same total), bad budgets are one-line errors."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from ecl.core import BudgetExceeded, InputValidationError, WorkflowState, error_from_dict
from ecl.llm import MockLlmProvider
from ecl.llm.budget import BudgetPolicy, parse_budget, parse_top_up
from ecl.testing import InMemoryDurableContext
from tests.unit.workflows_support import PASS, RecordingRecorder, critique_orchestrator, scripted


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
