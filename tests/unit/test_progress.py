"""``ecl run`` progress lines: the mark says how an attempt ended."""

from __future__ import annotations

import io

from rich.console import Console

from ecl.cli.runtime import Progress


def _progress() -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    return Progress(console=Console(file=out, width=200, color_system=None)), out


def test_a_failed_attempt_is_not_shown_with_a_check_mark() -> None:
    progress, out = _progress()
    progress({"event": "step_started", "step_id": "generate", "attempt": 1})
    progress({"event": "step_finished", "step_id": "generate", "state": "failed"})
    progress({"event": "step_started", "step_id": "generate", "attempt": 2})
    progress({"event": "step_finished", "step_id": "generate", "state": "completed"})
    lines = out.getvalue().splitlines()
    assert "✗ generate (failed)" in lines[1]
    assert "✓" not in lines[1]
    assert "✓ generate (completed)" in lines[3]
    assert progress.steps == 1


def test_concurrent_steps_end_under_their_own_names() -> None:
    progress, out = _progress()
    progress({"event": "step_started", "step_id": "a", "attempt": 1})
    progress({"event": "step_started", "step_id": "b", "attempt": 1})
    progress({"event": "step_finished", "step_id": "a", "state": "completed"})
    assert "✓ a (completed)" in out.getvalue().splitlines()[2]


def test_a_wait_for_the_providers_capacity_is_shown() -> None:
    progress, out = _progress()
    progress({"event": "llm_waiting", "workflow_id": "w", "reason": "requests per minute", "wait_s": 2.07})
    assert "… waiting 2.1s for the provider's requests per minute" in out.getvalue()


def test_a_wait_for_an_open_circuit_breaker_is_shown() -> None:
    progress, out = _progress()
    progress({"event": "llm_waiting", "workflow_id": "w", "reason": "circuit open", "wait_s": 26.0})
    assert "… waiting 26.0s for the open circuit breaker" in out.getvalue()


def test_a_workflow_waiting_for_a_slot_is_shown() -> None:
    progress, out = _progress()
    progress({"event": "workflow_queued", "workflow_id": "w", "definition_id": "haiku"})
    assert "… waiting for a slot (max_concurrent_workflows of haiku)" in out.getvalue()
