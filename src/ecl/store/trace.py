"""The trace of a run: what ran and what was decided, in order, read from the existing records.

Nothing here is stored: the events are derived at read time from the rows the run already
left (no second copy of the journal).

- ``step_started`` / ``step_completed``: each step attempt (``step_executions``);
- ``llm_call``: each provider call's metadata (``llm_calls``); with ``content``, also its
  ``prompt`` and ``reply`` when they were stored (``observability.capture_content``);
- ``verdict``: a completed step whose output carries ``decision`` ``pass`` or ``revise``
  (the critique), with its ``feedback``;
- ``revision``: revision round N begins: the first step execution of iteration N (the
  reviser), with the feedback that asked for it (the last ``revise`` verdict or signal);
- ``signal``: a resolved promise (an ``approve``/``revise`` answer, a budget top-up) with
  its payload: the ``promises`` rows (the embedded engine's own; on Restate, the rows the
  ``signal`` handler records when it resolves a promise);
- ``waiting``: the workflow waits now (``workflows.waiting``: approval, budget, breaker);
- ``state`` / ``cancelled``: the terminal state, with the error of a failed run.

Each event: ``id`` (stable, so a follower prints each once), ``time``, ``kind``, ``text`` (one
line for people), ``step_id`` when it belongs to a step, and the kind's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from ecl.core.state import WorkflowState
from ecl.store.repositories import LlmCallRecord, SignalRecord, StepExecutionRecord, WorkflowRecord

__all__ = ["DECISION_KINDS", "trace"]

DECISION_KINDS = frozenset({"verdict", "revision", "signal", "waiting"})
"""The kinds that say what was decided (the rest are attempts, calls and the end state)."""

_TIME = TypeAdapter(datetime)
_VERDICTS = ("pass", "revise")


def trace(
    workflow: WorkflowRecord,
    steps: Sequence[StepExecutionRecord],
    calls: Sequence[LlmCallRecord] = (),
    signals: Sequence[SignalRecord] = (),
    *,
    costs: Mapping[str, Decimal] | None = None,
    step: str | None = None,
    content: bool = False,
) -> list[dict[str, Any]]:
    """The run's events in time order (ties: the order they happen in a run). With ``step``,
    only that step's events (attempts, calls, verdicts, revision rounds it began)."""
    found: list[tuple[datetime, dict[str, Any]]] = []
    step_of = {s.id: s.step_id for s in steps}
    first_of_round: dict[int, StepExecutionRecord] = {}
    for s in steps:
        if s.iteration > 0 and s.iteration not in first_of_round:
            first_of_round[s.iteration] = s  # steps come in the order they started
    revision_starts = {s.id: n for n, s in first_of_round.items()}
    for s in steps:
        label = s.step_id + (f" (revision {s.iteration})" if s.iteration else "")
        where = {"step_id": s.step_id, "iteration": s.iteration, "attempt": s.attempt, "step_execution_id": s.id}
        if s.id in revision_starts:
            n = revision_starts[s.id]
            found.append(
                (s.started_at, {"id": f"revision:{n}", "kind": "revision", "text": f"revision round {n}",
                                "round": n, "feedback": None, **where})
            )  # fmt: skip
        found.append(
            (s.started_at, {"id": f"{s.id}:start", "kind": "step_started",
                            "text": f"{label} attempt {s.attempt} started", **where})
        )  # fmt: skip
        if s.completed_at is None:
            continue
        cost = (costs or {}).get(s.id, Decimal(0))
        detail = f"tokens={s.tokens_used or 0} cost=${cost}"
        if s.error:
            detail += f" error={s.error.get('type')}: {s.error.get('message')}"
        found.append(
            (s.completed_at, {"id": f"{s.id}:end", "kind": "step_completed", "state": s.state,
                              "tokens": s.tokens_used, "cost_usd": str(cost), "error": s.error,
                              "text": f"{label} attempt {s.attempt} {s.state} {detail}", **where})
        )  # fmt: skip
        out = s.output if isinstance(s.output, dict) else {}
        if s.state == "completed" and out.get("decision") in _VERDICTS:
            feedback = out.get("feedback")
            text = f"{s.step_id} verdict {out['decision']}" + (f": {feedback}" if feedback else "")
            found.append(
                (s.completed_at, {"id": f"{s.id}:verdict", "kind": "verdict", "decision": out["decision"],
                                  "feedback": feedback, "text": text, **where})
            )  # fmt: skip
    for c in calls:
        if step is not None and c.step_execution_id not in step_of:
            continue
        outcome = c.outcome if c.outcome == "ok" else f"{c.outcome} ({c.error_kind})"
        stored = {"prompt": c.prompt, "reply": c.reply} if content else {}
        found.append(
            (c.created_at, {**stored,
                "id": c.id, "kind": "llm_call", "step_id": step_of.get(c.step_execution_id or ""),
                "step_execution_id": c.step_execution_id, "provider": c.provider, "model": c.model,
                "outcome": c.outcome, "error_kind": c.error_kind, "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens, "cost_usd": str(c.cost_usd), "latency_ms": c.latency_ms,
                "text": (f"llm {c.provider}/{c.model} {outcome} in={c.input_tokens} "
                         f"out={c.output_tokens} cost=${c.cost_usd} {c.latency_ms:.0f}ms"),
            })
        )  # fmt: skip
    for sig in signals:
        payload = sig.payload if isinstance(sig.payload, dict) else {}
        decision, feedback = payload.get("decision"), payload.get("feedback")
        text = f"signal {sig.name}" + (f": {decision}" if decision else f" {sig.payload}")
        text += f" ({feedback})" if feedback else ""
        found.append(
            (sig.resolved_at, {"id": f"signal:{sig.name}", "kind": "signal", "name": sig.name,
                               "payload": sig.payload, "decision": decision, "feedback": feedback, "text": text})
        )  # fmt: skip
    state = workflow.state
    if state.value.startswith("waiting_for_"):
        found.append(
            (workflow.updated_at, {"id": f"waiting:{_iso(workflow.updated_at)}", "kind": "waiting",
                                   "state": state.value, "waiting": workflow.waiting, "text": state.value})
        )  # fmt: skip
    if state.is_terminal:
        kind = "cancelled" if state is WorkflowState.CANCELLED else "state"
        text = state.value
        if workflow.error:
            text += f" {workflow.error.get('type')}: {workflow.error.get('message')}"
        at = workflow.completed_at or workflow.updated_at
        found.append(
            (at, {"id": f"state:{state.value}", "kind": kind, "state": state.value,
                  "error": workflow.error, "text": text})
        )  # fmt: skip
    found.sort(key=lambda pair: pair[0])  # stable: ties keep the order of a run
    events: list[dict[str, Any]] = []
    asked: str | None = None
    for at, event in found:
        if event["kind"] in ("verdict", "signal") and event.get("decision") == "revise":
            asked = event.get("feedback") or asked
        if event["kind"] == "revision":
            event["feedback"] = asked
            if asked:
                event["text"] += f": {asked}"
        if step is not None and event.get("step_id") != step:
            continue
        events.append({"time": _iso(at), **event})
    return events


def _iso(at: datetime) -> str:
    return str(_TIME.dump_python(at, mode="json"))
