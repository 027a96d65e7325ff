"""The run page's step timeline: lanes for concurrent attempts, retries, open-ended running bars."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ecl.api.ui.timeline import duration, layout, svg
from ecl.store.repositories import StepExecutionRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _step(sid: str, step_id: str, start: float, end: float | None, **extra: Any) -> StepExecutionRecord:
    fields: dict[str, Any] = {"attempt": 1, "iteration": 0, "state": "completed" if end is not None else "running"}
    fields.update(extra)
    return StepExecutionRecord(
        id=sid, workflow_id="w", step_id=step_id, started_at=_at(start),
        completed_at=_at(end) if end is not None else None, **fields,
    )  # fmt: skip


def test_overlapping_steps_get_separate_lanes_side_by_side() -> None:
    steps = [
        _step("a", "generate", 0, 1),
        _step("b", "left", 1, 4),
        _step("c", "right", 1.5, 3),  # runs while "left" runs
        _step("d", "join", 4, 5),
    ]
    timeline = layout(steps, now=_at(10))
    assert timeline.lanes == ["generate", "left", "right", "join"]
    assert [b.lane for b in timeline.bars] == [0, 1, 2, 3]
    assert [(b.start, b.end) for b in timeline.bars] == [(0, 1), (1, 4), (1.5, 3), (4, 5)]
    assert timeline.span == 5


def test_overlapping_attempts_of_one_step_get_a_lane_each() -> None:
    steps = [
        _step("a", "worker", 0, 3, state="interrupted"),  # a dead process's attempt, settled late
        _step("b", "worker", 1, 2, attempt=2),
        _step("c", "worker", 3.5, 4, attempt=3),
        _step("d", "next", 4, 5),
    ]
    timeline = layout(steps, now=_at(10))
    assert timeline.lanes == ["worker", "worker", "next"]
    assert [b.lane for b in timeline.bars] == [0, 1, 0, 2]
    drawn = str(svg(timeline))
    assert drawn.count(">worker</text>") == 1  # a step is named once, beside its first lane


def test_retries_are_separate_bars_on_the_steps_lane_and_failed_attempts_are_marked() -> None:
    failure = {"type": "StepValidationError", "message": "not JSON"}
    steps = [
        _step("a", "critique", 0, 1, state="failed", error=failure),
        _step("x", "other", 0.5, 3),  # runs meanwhile, on its own lane
        _step("b", "critique", 1, 2, attempt=2, state="failed", error=failure),
        _step("c", "critique", 2, 2.5, attempt=3),
    ]
    timeline = layout(steps, now=_at(10))
    critique = [b for b in timeline.bars if b.step_id == "critique"]
    assert [(b.attempt, b.failed) for b in critique] == [(1, True), (2, True), (3, False)]
    assert {b.lane for b in critique} == {0} and timeline.lanes == ["critique", "other"]
    assert critique[0].text == (
        "critique #1: started at 0 ms, failed at 1.0 s, took 1.0 s; error: StepValidationError: not JSON"
    )
    drawn = svg(timeline)
    assert drawn.count('class="bar bar-failed"') == 2
    assert drawn.count('class="bar bar-completed"') == 2
    assert "#2 ✕</text>" in drawn


def test_a_running_attempt_is_open_ended_up_to_now() -> None:
    steps = [_step("a", "generate", 0, 1), _step("b", "critique", 1, None)]
    timeline = layout(steps, now=_at(7))
    running = timeline.bars[1]
    assert running.running and not running.failed
    assert running.end == 7 and timeline.span == 7
    assert "still running" in running.text
    drawn = svg(timeline)
    assert 'class="bar bar-running"' in drawn and 'stroke-dasharray="4 3"' in drawn


def test_the_svg_is_accessible_and_escapes_step_names() -> None:
    steps = [_step("a", "<script>alert(1)</script>", 0, 2)]
    drawn = str(svg(layout(steps, now=_at(3)), title="Timeline of <b>"))
    assert "<script>" not in drawn
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in drawn
    assert 'role="img"' in drawn and 'aria-labelledby="timeline-title timeline-desc"' in drawn
    assert '<title id="timeline-title">Timeline of &lt;b&gt;</title>' in drawn
    assert len(re.findall(r"<title>", drawn)) == 1  # one tooltip per bar
    assert svg(layout([], now=_at(1))) == ""


def test_durations_read_naturally() -> None:
    assert [duration(s) for s in (0.25, 12.34, 245, 7500)] == ["250 ms", "12.3 s", "4 min 05 s", "2 h 05 min"]
