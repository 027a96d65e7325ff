"""The trace read model: decisions derived from the records, in order, nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ecl.core.state import WorkflowState
from ecl.store.repositories import SignalRecord, StepExecutionRecord, WorkflowEventRecord, WorkflowRecord
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


def _event(n: int, at: float, kind: str, data: dict[str, Any]) -> WorkflowEventRecord:
    return WorkflowEventRecord(id=n, at=_at(at), kind=kind, data=data)


def test_recorded_state_changes_and_waits_are_in_order_with_how_long_each_wait_lasted() -> None:
    steps = [_step("a", "critique", 1, output={"decision": "pass"})]
    limit = {"reason": "rate_limit", "model": "anthropic/m", "why": "retry-after", "seconds": 2, "until": "x"}
    budget = {"reason": "budget", "message": "over budget"}
    events = [
        _event(1, 0, "state", {"state": "running"}),
        _event(2, 0.2, "wait", limit),
        _event(3, 0.7, "wait_end", limit),
        _event(4, 2, "state", {"state": "waiting_for_revision"}),
        _event(5, 5, "state", {"state": "running"}),
        _event(6, 6, "state", {"state": "waiting_for_budget"}),
        _event(7, 6, "wait", budget),
        _event(8, 8, "wait_end", budget),
        _event(9, 8, "state", {"state": "cancelled"}),
    ]
    signals = [SignalRecord(name="approval", payload={"decision": "approve"}, resolved_at=_at(4))]
    done = _workflow(WorkflowState.CANCELLED, completed_at=_at(8))
    shown = trace(done, steps, signals=signals, events=events)
    assert [(e["kind"], e.get("state")) for e in shown] == [
        ("state", "running"), ("waiting", None), ("waited", None), ("step_started", None),
        ("step_completed", "completed"), ("verdict", None), ("waiting", "waiting_for_revision"), ("signal", None),
        ("waited", "waiting_for_revision"), ("state", "running"), ("waiting", "waiting_for_budget"),
        ("waited", "waiting_for_budget"), ("cancelled", "cancelled"),
    ]  # fmt: skip
    rate = [e for e in shown if e.get("waiting") == limit]
    assert rate[0]["text"] == "waiting for rate limit of anthropic/m (retry-after), 2 s until x"
    assert rate[1]["seconds"] == 0.5
    assert rate[1]["text"] == "waited 0.5 s for rate limit of anthropic/m (retry-after), 2 s until x"
    approval = next(e for e in shown if e["kind"] == "waited" and e.get("state") == "waiting_for_revision")
    assert approval["seconds"] == 3
    assert approval["text"] == "waited 3.0 s (waiting_for_revision)"
    assert len({e["id"] for e in shown}) == len(shown)
    # A run recorded before these events: only its current wait, from its row.
    before = trace(_workflow(WorkflowState.WAITING_FOR_REVISION), steps)
    assert [e["kind"] for e in before][-1] == "waiting"
