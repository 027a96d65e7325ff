"""The trace of a run: what ran and what was decided, in order, read from the existing records.

Nothing here is stored but the run's state changes and waits: the other events are derived
at read time from the rows the run already left (no second copy of the journal).

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
- ``state``: a state change (``running`` at a start or a resume, ...): the ``workflow_events``
  rows that triggers on ``workflows`` write in the transaction of each change, on either
  engine and from every path (a cancellation too);
- ``waiting``: a wait begins: a ``waiting_for_*`` state (approval, revision, budget), or a
  rate-limit, breaker or slot wait of a running workflow (``workflow_events`` ``wait``, with
  its ``waiting``); for a run recorded before those events existed, only its current wait;
- ``waited``: a wait that is over, what it waited for and how long (``seconds``);
- ``state`` / ``cancelled``: the terminal state, with the error of a failed run.

Each event: ``id`` (stable, so a follower prints each once), ``time``, ``kind``, ``text`` (one
line for people), ``step_id`` when it belongs to a step, and the kind's own fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from ecl.core.state import WorkflowState
from ecl.core.waiting import describe_wait
from ecl.store.repositories import (
    LlmCallRecord,
    LlmCallRepository,
    LlmTotals,
    SignalRecord,
    StepExecutionRecord,
    StepExecutionRepository,
    WorkflowEventRecord,
    WorkflowRecord,
    WorkflowRepository,
)

__all__ = ["DECISION_KINDS", "RunRecords", "read_run", "trace"]

DECISION_KINDS = frozenset({"verdict", "revision", "signal", "waiting", "waited"})
"""The kinds that say what was decided or waited for (the rest are attempts, calls and state changes)."""

_TIME = TypeAdapter(datetime)
_ENDED = frozenset(s.value for s in WorkflowState if s.is_terminal)
_VERDICTS = ("pass", "revise")


@dataclass(frozen=True)
class RunRecords:
    """What is recorded of one run: what ``ecl status``/``ecl logs`` and the run page show."""

    workflow: WorkflowRecord
    steps: list[StepExecutionRecord]
    calls: list[LlmCallRecord]
    totals: LlmTotals
    step_costs: dict[str, Decimal]
    signals: list[SignalRecord]
    changes: list[WorkflowEventRecord]

    def trace(self, *, step: str | None = None, content: bool = False) -> list[dict[str, Any]]:
        """The run's trace (:func:`trace`) from these records."""
        return trace(
            self.workflow,
            self.steps,
            self.calls,
            self.signals,
            events=self.changes,
            costs=self.step_costs,
            step=step,
            content=content,
        )


async def read_run(
    workflows: WorkflowRepository,
    steps: StepExecutionRepository,
    llm_calls: LlmCallRepository,
    workflow_id: str,
    *,
    step_id: str | None = None,
) -> RunRecords:
    """Read one run's records (a ``NotFoundError`` for an unknown id); ``step_id``: only that
    step's attempts."""
    return RunRecords(
        workflow=await workflows.get(workflow_id),
        steps=await steps.list_for(workflow_id, step_id=step_id),
        calls=await llm_calls.list_for(workflow_id),
        totals=await llm_calls.totals(workflow_id),
        step_costs=await llm_calls.step_costs(workflow_id),
        signals=await workflows.signals(workflow_id),
        changes=await workflows.events(workflow_id),
    )


def trace(
    workflow: WorkflowRecord,
    steps: Sequence[StepExecutionRecord],
    calls: Sequence[LlmCallRecord] = (),
    signals: Sequence[SignalRecord] = (),
    *,
    events: Sequence[WorkflowEventRecord] = (),
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
    found.extend(_changes(events, workflow))
    state = workflow.state
    if state.value.startswith("waiting_for_") and not events:
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
    shown: list[dict[str, Any]] = []
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
        shown.append({"time": _iso(at), **event})
    return shown


def _changes(events: Sequence[WorkflowEventRecord], workflow: WorkflowRecord) -> list[tuple[datetime, dict[str, Any]]]:
    """The ``state``, ``waiting`` and ``waited`` events of the recorded state changes and waits
    (a terminal state is left to the end-state event, which carries the error)."""
    found: list[tuple[datetime, dict[str, Any]]] = []
    waiting_since: tuple[str, datetime] | None = None  # a waiting_for_* state and when it began
    wait_began: datetime | None = None
    for ev in events:
        data = ev.data if isinstance(ev.data, dict) else {}
        key = f"event:{ev.id}"
        if ev.kind == "state":
            value = str(data.get("state"))
            ended = value in _ENDED
            if waiting_since is not None:
                what, began = waiting_since
                # A run that ended while it waited: the wait is over when its end-state event says so.
                at = (workflow.completed_at or ev.at) if ended else ev.at
                seconds = round((at - began).total_seconds(), 3)
                found.append(
                    (at, {"id": f"{key}:waited", "kind": "waited", "state": what, "seconds": seconds,
                             "text": f"waited {seconds:.1f} s ({what})"})
                )  # fmt: skip
                waiting_since = None
            if value.startswith("waiting_for_"):
                waiting_since = (value, ev.at)
                now = workflow.waiting if value == workflow.state.value else None
                found.append((ev.at, {"id": key, "kind": "waiting", "state": value, "waiting": now, "text": value}))
            elif not ended:
                found.append((ev.at, {"id": key, "kind": "state", "state": value, "text": value}))
        elif data.get("reason") == "budget":
            continue  # the waiting_for_budget state says it
        elif ev.kind == "wait":
            wait_began = ev.at
            found.append(
                (ev.at, {"id": key, "kind": "waiting", "waiting": data,
                         "text": f"waiting for {describe_wait(data)}"})
            )  # fmt: skip
        elif ev.kind == "wait_end":
            began = wait_began or _since(data) or ev.at
            seconds = round((ev.at - began).total_seconds(), 3)
            wait_began = None
            found.append(
                (ev.at, {"id": key, "kind": "waited", "waiting": data, "seconds": seconds,
                         "text": f"waited {seconds:.1f} s for {describe_wait(data)}"})
            )  # fmt: skip
    return found


def _since(waiting: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(waiting.get("since")))
    except ValueError:
        return None


def _iso(at: datetime) -> str:
    return str(_TIME.dump_python(at, mode="json"))
