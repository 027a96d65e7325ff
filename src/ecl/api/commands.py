"""What changes a workflow — submit, signal, cancel, run again — in one place for the JSON API
(:mod:`ecl.api.routes.workflows`) and the dashboard (:mod:`ecl.api.ui`): the same checks, the
same engine calls, the same errors (rendered by :mod:`ecl.api.errors` as JSON, by the dashboard
as a message)."""

from __future__ import annotations

from typing import Any

from ecl.analyzer.bundle import ANALYZER_ID, prepare_submission
from ecl.api.services import Services
from ecl.core.errors import InputValidationError
from ecl.core.rules import APPROVAL_PROMISE
from ecl.llm.budget import parse_budget, parse_top_up
from ecl.store.repositories import WorkflowRecord, workflow_record
from ecl.workflows import BUDGET_PROMISE

__all__ = ["cancel", "rerun", "signal", "submit"]


async def submit(
    svc: Services, definition_id: str, data: dict[str, Any], workflow_id: str | None = None
) -> tuple[WorkflowRecord, bool]:
    """Start a workflow; the record and whether this call created it (``False``: the same id
    and input were submitted before). A bad input is an error naming the field."""
    # The engine checks the definition, the input and a resubmission (the rules are theirs),
    # and says whether this request created the workflow: of concurrent identical
    # submissions exactly one gets it.
    parse_budget(data)
    if definition_id == ANALYZER_ID:
        # Server-side paths: only under analyzer.allowed_roots; the server's limits apply.
        data = prepare_submission(data, svc.settings.analyzer, from_api=True)
    admission = await svc.engine.admit(definition_id, data, workflow_id)
    # The row the engine wrote (or found): no second trip to the database to read it back.
    return workflow_record(admission.row), admission.created


async def rerun(svc: Services, workflow_id: str) -> WorkflowRecord:
    """A new run of a workflow's definition with the same input."""
    previous = await svc.workflows.get(workflow_id)
    data = previous.input if isinstance(previous.input, dict) else {}
    record, _created = await submit(svc, previous.definition_id, dict(data))
    return record


async def signal(
    svc: Services,
    workflow_id: str,
    *,
    name: str = APPROVAL_PROMISE,
    decision: str | None = None,
    feedback: str | None = None,
    payload: dict[str, Any] | None = None,
) -> WorkflowRecord:
    """Resolve a durable promise: a decision (``approve``/``revise`` with feedback) for human
    approval, or a raw ``payload`` for a named promise."""
    answer: Any = payload
    if answer is None:
        if decision is None:
            raise InputValidationError(
                "give decision (approve|revise) or payload",
                errors=[{"field": "decision", "message": "required without payload"}],
            )
        if decision not in ("approve", "revise"):
            raise InputValidationError(
                f"decision must be approve or revise, got {decision[:40]!r}",
                errors=[{"field": "decision", "message": "approve or revise", "value": decision[:40]}],
            )
        answer = {"decision": decision, "feedback": feedback}
    if name.split("#", 1)[0] == BUDGET_PROMISE:
        parse_top_up(answer)  # a bad top-up is the caller's 422, not the workflow's failure
    await svc.engine.signal(workflow_id, name, answer)
    return await svc.workflows.get(workflow_id)


async def cancel(svc: Services, workflow_id: str) -> WorkflowRecord:
    """Cancel it, whatever it is doing."""
    await svc.engine.cancel(workflow_id)
    return await svc.workflows.get(workflow_id)
