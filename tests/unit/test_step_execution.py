"""A step's journaled result: ``StepExecution.journal()`` is ``model_dump(mode="json")``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ecl.core.metadata import StepMetadata, TokenUsage
from ecl.steps.execution import StepExecution, TraceEvent

NOW = datetime(2026, 11, 27, 23, 30, 43, 89010, tzinfo=UTC)


@pytest.mark.parametrize("cost", [Decimal(0), Decimal("0.000123"), Decimal("1E+2"), Decimal("12.5000")])
@pytest.mark.parametrize(
    "at",
    [NOW, NOW.replace(microsecond=0), NOW.astimezone(timezone(timedelta(hours=2))), NOW.replace(tzinfo=None)],
)
@pytest.mark.parametrize(
    "output",
    [{"result": 1}, {}, {"a": [1, {"b": None}], "c": 1.5, "d": float("inf"), "e": "x", "f": True}],
)
def test_journal_is_the_json_dump(cost: Decimal, at: datetime, output: dict[str, Any]) -> None:
    metadata = StepMetadata(
        step_id="s",
        started_at=at,
        completed_at=at,
        attempt=2,
        llm_tokens_used=TokenUsage(input=3, output=4, cache_read=5),
        llm_calls=2,
        cost_usd=cost,
        spent_tokens=12,
        llm_models=["a", "b"],
    )
    traces = [
        TraceEvent(kind="started", at=at, detail={"iteration": 0}),
        TraceEvent(kind="attempt_failed", detail={"message": "m", "errors": [{"x": 1.5}], "pair": (1, 2)}),
        TraceEvent(kind="retry", detail={"wait_s": 0.25}),
        TraceEvent(kind="completed", attempt=2),
    ]
    execution = StepExecution(step_id="s", output=output, feedback="again", metadata=metadata, traces=traces)
    assert execution.journal() == execution.model_dump(mode="json")


def test_journal_of_a_bare_execution() -> None:
    execution = StepExecution(step_id="s", output={}, metadata=StepMetadata(step_id="s", started_at=NOW))
    assert execution.journal() == execution.model_dump(mode="json")
    assert StepExecution.model_validate(execution.journal()) == execution
