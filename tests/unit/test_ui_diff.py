"""The run page's revision rounds: drafts from the steps, decisions from the trace, word diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ecl.api.ui.diff import MAX_DIFF_CHARS, diff_html, draft_text, rounds
from ecl.core.state import WorkflowState
from ecl.store.repositories import StepExecutionRecord, WorkflowRecord
from ecl.store.trace import trace

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _step(sid: str, step_id: str, start: float, *, iteration: int = 0, state: str = "completed", **extra: Any) -> Any:
    return StepExecutionRecord(
        id=sid, workflow_id="w", step_id=step_id, attempt=1, iteration=iteration, state=state,
        started_at=_at(start), completed_at=_at(start + 0.5), **extra,
    )  # fmt: skip


def _events(steps: list[StepExecutionRecord]) -> list[dict[str, Any]]:
    workflow = WorkflowRecord(
        id="w", definition_id="critique-revise", state=WorkflowState.COMPLETED, input={}, created_at=T0, updated_at=T0
    )
    return trace(workflow, steps)


def test_diff_marks_removed_and_added_words_and_escapes_them() -> None:
    marked = str(diff_html("the cat sat <b>", "the dog sat <i>"))
    assert marked == "the <del>cat</del><ins>dog</ins> sat <del>&lt;b&gt;</del><ins>&lt;i&gt;</ins>"
    assert str(diff_html("same", "same")) == "same"
    assert "too long" in str(diff_html("a" * MAX_DIFF_CHARS, "b"))


def test_rounds_of_a_critique_revise_run_with_one_revision_and_a_retry() -> None:
    steps = [
        _step("g", "generate", 0, output={"draft": "Cats are nice."}, input={"topic": "cats"}),
        _step("c0", "critique", 1, input={"draft": "Cats are nice."},
              output={"critique": "thin", "decision": "revise", "feedback": "add a <fact>"}),
        _step("r1a", "revise", 2, iteration=1, state="failed", error={"type": "X", "message": "unchanged"}),
        _step("r1", "revise", 3, iteration=1, output={"revised_draft": "Cats sleep 15 hours a day."}),
        _step("c1", "critique", 4, iteration=1, input={"draft": "Cats sleep 15 hours a day."},
              output={"critique": "good", "decision": "pass", "feedback": None}),
        _step("f", "final", 5, output={"text": "Cats sleep 15 hours a day.", "artifact_id": "x"}),
    ]  # fmt: skip
    found = rounds(steps, _events(steps))
    assert [(r.number, r.step_id, r.decision) for r in found] == [(0, "generate", "revise"), (1, "revise", "pass")]
    assert found[0].draft == "Cats are nice." and found[0].diff is None and found[0].feedback == "add a <fact>"
    assert found[1].asked == "add a <fact>"
    assert found[1].draft == "Cats sleep 15 hours a day."
    assert str(found[1].diff) == "Cats <del>are nice.</del><ins>sleep 15 hours a day.</ins>"
    assert (found[1].added, found[1].removed) == (5, 2)


def test_a_round_still_running_shows_what_exists_and_a_run_without_verdicts_has_no_rounds() -> None:
    steps = [
        _step("c0", "critique", 1, input={"draft": "v0"}, output={"decision": "revise", "feedback": "more"}),
        _step("r1", "revise", 2, iteration=1, output={"revised_draft": "v1"}),
        _step("c1", "critique", 3, iteration=1, state="running", input={"draft": "v1"}),
    ]
    found = rounds(steps, _events(steps))
    assert [(r.number, r.draft, r.decision) for r in found] == [(0, "v0", "revise"), (1, "v1", None)]
    plain = [_step("a", "summarize", 0, output={"text": "x"})]
    assert rounds(plain, _events(plain)) == []


def test_draft_text_takes_a_string_a_known_field_or_the_only_string() -> None:
    assert draft_text("x") == "x"
    assert draft_text({"revised_draft": "a", "draft": "b"}) == "a"
    assert draft_text({"summary": "only", "n": 3}) == "only"
    assert draft_text({"a": "1", "b": "2"}) is None
    assert draft_text(None) is None
