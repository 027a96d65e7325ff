"""The trace read model: decisions derived from the records, in order, nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ecl.core.state import WorkflowState
from ecl.store.repositories import SignalRecord, StepExecutionRecord, WorkflowRecord
from ecl.store.trace import trace

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _workflow(state: WorkflowState, **extra: Any) -> WorkflowRecord:
    return WorkflowRecord(
        id="w", definition_id="critique-revise", state=state, input={}, created_at=T0, updated_at=_at(9), **extra
    )


def _step(sid: str, step_id: str, start: float, *, iteration: int = 0, state: str = "completed", **extra: Any) -> Any:
    return StepExecutionRecord(
        id=sid, workflow_id="w", step_id=step_id, attempt=1, iteration=iteration, state=state,
        started_at=_at(start), completed_at=_at(start + 0.5), **extra,
    )  # fmt: skip


def test_a_failed_step_is_no_verdict_and_a_cancelled_run_ends_with_cancelled() -> None:
    steps = [
        _step("a", "critique", 1, state="failed", output={"decision": "revise"}, error={"type": "X", "message": "m"}),
        _step("b", "critique", 2, output={"decision": "maybe"}),
    ]
    events = trace(_workflow(WorkflowState.CANCELLED, completed_at=_at(5)), steps)
    assert [e["kind"] for e in events] == ["step_started", "step_completed"] * 2 + ["cancelled"]
    assert events[1]["text"] == "critique attempt 1 failed tokens=0 cost=$0 error=X: m"


def test_a_waiting_run_shows_its_wait_and_a_revise_signal_feeds_the_next_round() -> None:
    steps = [_step("a", "critique", 1, output={"decision": "pass"}), _step("b", "revise", 4, iteration=1)]
    signals = [SignalRecord(name="approval", payload={"decision": "revise", "feedback": "shorter"}, resolved_at=_at(3))]
    waiting = {"reason": "approval"}
    events = trace(_workflow(WorkflowState.WAITING_FOR_REVISION, waiting=waiting), steps, signals=signals)
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "step_started", "step_completed", "verdict", "signal", "revision", "step_started", "step_completed", "waiting",
    ]  # fmt: skip
    assert events[4]["feedback"] == "shorter"
    assert events[-1]["waiting"] == waiting
    only = trace(_workflow(WorkflowState.WAITING_FOR_REVISION), steps, signals=signals, step="critique")
    assert {e["step_id"] for e in only} == {"critique"}
