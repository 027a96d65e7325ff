"""The workflow state machine."""

from __future__ import annotations

from enum import StrEnum

from ecl.core.errors import IllegalTransitionError, InputValidationError

__all__ = ["ACTIVE_STATES", "TERMINAL_STATES", "WorkflowState", "check_transition", "parse_state", "workflow_is_active"]


class WorkflowState(StrEnum):
    """Where a workflow is in its life. Stored by value: the strings are compatibility data."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING_FOR_REVISION = "waiting_for_revision"
    WAITING_FOR_BUDGET = "waiting_for_budget"
    """An LLM call would cross the budget: waiting for ``ecl signal ID budget --add-usd N``."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled: nothing runs again."""
        return self in _TERMINAL


_TERMINAL = frozenset({WorkflowState.COMPLETED, WorkflowState.FAILED, WorkflowState.CANCELLED})

TERMINAL_STATES: tuple[str, ...] = tuple(s.value for s in WorkflowState if s in _TERMINAL)
"""The stored values of the final states (for SQL filters): completed, failed, cancelled."""
ACTIVE_STATES: tuple[str, ...] = tuple(s.value for s in WorkflowState if s not in _TERMINAL)
"""The stored values of the states a workflow may still leave: pending, running, waiting."""


def workflow_is_active(state: WorkflowState | str) -> bool:
    """True while the workflow may still run (not completed, failed or cancelled)."""
    return not WorkflowState(state).is_terminal


_ALLOWED: dict[WorkflowState, frozenset[WorkflowState]] = {
    WorkflowState.PENDING: frozenset({WorkflowState.RUNNING, WorkflowState.CANCELLED, WorkflowState.FAILED}),
    WorkflowState.RUNNING: frozenset(
        {
            WorkflowState.RUNNING,
            WorkflowState.WAITING_FOR_REVISION,
            WorkflowState.WAITING_FOR_BUDGET,
            WorkflowState.COMPLETED,
            WorkflowState.FAILED,
            WorkflowState.CANCELLED,
            WorkflowState.PENDING,
        }
    ),
    WorkflowState.WAITING_FOR_BUDGET: frozenset(
        {
            WorkflowState.RUNNING,
            WorkflowState.WAITING_FOR_BUDGET,
            WorkflowState.FAILED,
            WorkflowState.CANCELLED,
        }
    ),
    WorkflowState.WAITING_FOR_REVISION: frozenset(
        {
            WorkflowState.RUNNING,
            WorkflowState.WAITING_FOR_REVISION,
            WorkflowState.COMPLETED,
            WorkflowState.FAILED,
            WorkflowState.CANCELLED,
        }
    ),
    WorkflowState.COMPLETED: frozenset(),
    WorkflowState.FAILED: frozenset(),
    WorkflowState.CANCELLED: frozenset(),
}


def check_transition(workflow_id: str, current: WorkflowState, new: WorkflowState) -> None:
    """Raise :class:`IllegalTransitionError` unless ``current -> new`` is allowed."""
    if new not in _ALLOWED[current]:
        raise IllegalTransitionError(
            f"workflow {workflow_id} cannot go from {current.value} to {new.value}",
            workflow_id=workflow_id,
            from_state=current.value,
            to_state=new.value,
        )


def parse_state(value: str) -> WorkflowState:
    """Parse a state name, with an error that lists the valid ones."""
    try:
        return WorkflowState(value)
    except ValueError:
        valid = ", ".join(s.value for s in WorkflowState)
        raise InputValidationError(
            f"unknown state {value!r}; expected one of: {valid}",
            errors=[{"field": "state", "message": f"expected one of: {valid}", "value": value}],
        ) from None
