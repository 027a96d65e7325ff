"""The embedded engine's hot-path SQL, built once per engine.

Building a SQLAlchemy statement costs more than executing it on SQLite, so the statements
the engine runs per step or per workflow are constructed here once, with bind parameters
(prefixed ``b_`` so they never clash with column names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, select, update

from ecl.core.records import INTERRUPTED, INTERRUPTED_STEP_ERROR, PENDING
from ecl.core.state import TERMINAL_STATES, WorkflowState

__all__ = ["Statements"]


@dataclass(frozen=True)
class Statements:
    """Prepared statements over the ECL tables."""

    load_workflow: Any
    load_journal: Any
    finish: Any
    set_state: Any
    set_state_and_revisions: Any
    set_waiting: Any
    step_finished: Any
    interrupt_steps: Any
    interrupt_calls: Any
    settle_call: Any
    kv_delete: Any
    start_pending: Any

    @classmethod
    def build(cls, t: dict[str, Table]) -> Statements:
        """Construct every statement once."""
        w, j, s, kv = t["workflows"], t["journal_entries"], t["step_executions"], t["workflow_kv"]
        c = t["llm_calls"]
        # No IN (...) here: an expanding parameter cannot run as one executemany, and these
        # updates are batched across workflows by the writer.
        owned_active = and_(
            w.c.id == bindparam("b_id"),
            w.c.owner == bindparam("b_owner"),
            *(w.c.state != ended for ended in TERMINAL_STATES),
        )
        return cls(
            load_workflow=select(w).where(w.c.id == bindparam("b_id")),
            load_journal=select(j).where(j.c.workflow_id == bindparam("b_id")).order_by(j.c.seq),
            finish=update(w)
            .where(owned_active)
            .values(
                state=bindparam("b_state"),
                output=bindparam("b_output"),
                error=bindparam("b_error"),
                waiting=None,
                revision_count=bindparam("b_revisions"),
                owner=None,
                updated_at=bindparam("b_now"),
                completed_at=bindparam("b_now"),
            ),
            set_state=update(w)
            .where(owned_active)
            .values(state=bindparam("b_state"), waiting=bindparam("b_waiting"), updated_at=bindparam("b_now")),
            set_state_and_revisions=update(w)
            .where(owned_active)
            .values(
                state=bindparam("b_state"),
                waiting=bindparam("b_waiting"),
                revision_count=bindparam("b_revisions"),
                updated_at=bindparam("b_now"),
            ),
            set_waiting=update(w).where(owned_active).values(waiting=bindparam("b_waiting")),
            step_finished=update(s)
            .where(s.c.id == bindparam("b_id"))
            .values(
                state=bindparam("b_state"),
                output=bindparam("b_output"),
                error=bindparam("b_error"),
                completed_at=bindparam("b_now"),
                tokens_used=bindparam("b_tokens"),
            ),
            interrupt_steps=update(s)
            .where(and_(s.c.workflow_id == bindparam("b_id"), s.c.state == "running"))
            .values(state=INTERRUPTED, error=INTERRUPTED_STEP_ERROR, completed_at=bindparam("b_now")),
            interrupt_calls=update(c)
            .where(and_(c.c.workflow_id == bindparam("b_id"), c.c.outcome == PENDING))
            .values(outcome=INTERRUPTED),
            settle_call=update(c)
            .where(c.c.id == bindparam("b_id"))
            .values(
                model=bindparam("b_model"),
                input_tokens=bindparam("b_input"),
                output_tokens=bindparam("b_output"),
                cache_creation_tokens=bindparam("b_cache_creation"),
                cache_read_tokens=bindparam("b_cache_read"),
                latency_ms=bindparam("b_latency"),
                outcome=bindparam("b_outcome"),
                error_kind=bindparam("b_error_kind"),
                cost_usd=bindparam("b_cost"),
                reply=bindparam("b_reply"),
            ),
            start_pending=update(w)
            .where(
                and_(
                    w.c.id == bindparam("b_id"),
                    w.c.owner == bindparam("b_owner"),
                    w.c.state == WorkflowState.PENDING.value,
                )
            )
            .values(state=WorkflowState.RUNNING.value, updated_at=bindparam("b_now")),
            kv_delete=kv.delete().where(and_(kv.c.workflow_id == bindparam("b_id"), kv.c.key == bindparam("b_key"))),
        )
