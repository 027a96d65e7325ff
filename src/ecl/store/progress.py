"""What a workflow had done so far, read back from its records.

A cancelled workflow's stored result keeps the outputs, steps, tokens and spend it had:
they are rebuilt here from its ``step_executions`` and ``llm_calls`` rows, so the same
result is written whoever cancels it (the process running it, another process, the
Restate client or service) and whatever it was doing (running, waiting, idle).
Synchronous, on a :class:`~sqlalchemy.engine.Connection`: the embedded engine's writer
runs it in its transaction, an async engine through ``run_sync``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ecl.core.metadata import StepMetadata, TokenUsage
from ecl.core.results import WorkflowResult
from ecl.core.rules import cancelled_result
from ecl.store import models as m

__all__ = ["cancelled_result_from_records"]


def _no_calls() -> dict[str, Any]:
    return {"usage": TokenUsage(), "calls": 0, "cost": Decimal(0)}


def cancelled_result_from_records(conn: Connection, workflow_id: str, definition_id: str) -> WorkflowResult:
    """The result of cancelling ``workflow_id`` now: :func:`~ecl.core.rules.cancelled_result`
    with every completed step's output and metadata, the tokens of those steps, the cost of
    every LLM call it made, and its revision count."""
    s, c, w = m.StepExecution.__table__, m.LlmCall.__table__, m.Workflow.__table__
    per_step: dict[str, dict[str, Any]] = {}
    cost = Decimal(0)
    for call in conn.execute(
        select(
            c.c.step_execution_id,
            c.c.input_tokens,
            c.c.output_tokens,
            c.c.cache_creation_tokens,
            c.c.cache_read_tokens,
            c.c.cost_usd,
        ).where(c.c.workflow_id == workflow_id)
    ):
        amount = Decimal(str(call.cost_usd or 0))
        cost += amount
        entry = per_step.setdefault(call.step_execution_id or "", _no_calls())
        entry["usage"] = entry["usage"] + TokenUsage(
            input=call.input_tokens or 0,
            output=call.output_tokens or 0,
            cache_creation=call.cache_creation_tokens or 0,
            cache_read=call.cache_read_tokens or 0,
        )
        entry["calls"] += 1
        entry["cost"] += amount
    outputs: dict[str, Any] = {}
    steps: list[StepMetadata] = []
    tokens = TokenUsage()
    rows = conn.execute(
        select(s).where(s.c.workflow_id == workflow_id, s.c.state == "completed").order_by(s.c.started_at, s.c.id)
    )
    for row in rows:
        calls = per_step.get(row.id, _no_calls())
        outputs[row.step_id] = row.output  # a later iteration of a step replaces the earlier one
        steps.append(
            StepMetadata(
                step_id=row.step_id,
                started_at=row.started_at,
                completed_at=row.completed_at,
                attempt=row.attempt,
                llm_tokens_used=calls["usage"],
                llm_calls=calls["calls"],
                cost_usd=calls["cost"],
            )
        )
        tokens = tokens + calls["usage"]
    revisions = conn.execute(select(w.c.revision_count).where(w.c.id == workflow_id)).scalar()
    base = cancelled_result(workflow_id, definition_id)
    return base.model_copy(
        update={"outputs": outputs, "steps": steps, "tokens": tokens, "cost_usd": cost, "revisions": revisions or 0}
    )
