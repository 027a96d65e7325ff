"""Run records written straight through the async repositories.

Used where the embedded engine's group-commit writer is not running (the Restate engine:
its records are written inside journaled ``ctx.run`` blocks, so a replay never writes them
twice).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from ecl.core.records import LlmCall, StateChange, StepFinished, StepStarted
from ecl.core.state import TERMINAL_STATES, WorkflowState
from ecl.core.waiting import budget_wait, rate_limit_wait
from ecl.store import models as m
from ecl.store.repositories import (
    LlmCallRecord,
    LlmCallRepository,
    StepExecutionRepository,
    WorkflowRepository,
)

__all__ = ["SqlRecorder"]


class SqlRecorder:
    """Step, LLM-call and workflow-state records on an async engine."""

    def __init__(self, db: AsyncEngine) -> None:
        self.workflows = WorkflowRepository(db)
        self.steps = StepExecutionRepository(db)
        self.calls = LlmCallRepository(db)
        self._running: dict[str, str] = {}  # execution id -> step id, for a wait's ``step_id``

    async def step_started(self, step: StepStarted) -> str:
        """Insert a running step row."""
        execution_id = uuid.uuid4().hex
        await self.steps.start(
            id=execution_id,
            workflow_id=step.workflow_id,
            step_id=step.step_id,
            attempt=step.attempt,
            iteration=step.iteration,
            input=step.input,
        )
        self._running[execution_id] = step.step_id
        return execution_id

    async def step_finished(self, execution_id: str, result: StepFinished) -> None:
        """Complete the step row."""
        self._running.pop(execution_id, None)
        await self.steps.finish(
            execution_id, state=result.state, output=result.output, error=result.error, tokens=result.total_tokens
        )

    async def llm_call_sent(self, call: LlmCall) -> None:
        """Insert the ``pending`` LLM call row (committed before the request goes out)."""
        await self.calls.record(LlmCallRecord(**call.row(call.call_id, datetime.now(UTC))))

    async def llm_call(self, call: LlmCall) -> None:
        """Settle the call's row (insert it when it was never recorded as pending)."""
        await self.calls.settle(LlmCallRecord(**call.row(call.call_id or uuid.uuid4().hex, datetime.now(UTC))))

    async def interrupted(self, workflow_id: str) -> None:
        """Settle what a dead attempt left in flight: ``running`` step rows and ``pending``
        LLM calls of the workflow become ``interrupted`` (one transaction: this is on the way
        into every run on Restate)."""
        async with self.workflows.sessions.begin() as session:
            await self.steps.interrupt_running(workflow_id, session=session)
            await self.calls.interrupt_pending(workflow_id, session=session)

    async def llm_waiting(
        self, workflow_id: str, execution_id: str, reason: str, seconds: float, model: str = ""
    ) -> None:
        """A call waits for the provider's capacity: the workflow's ``waiting`` says so."""
        step_id = self._running.get(execution_id)
        await self._set_waiting(workflow_id, rate_limit_wait(model, reason, seconds, step_id))

    async def llm_waited(self, workflow_id: str, execution_id: str) -> None:
        """The call that waited goes on."""
        await self._set_waiting(workflow_id, None)

    async def _set_waiting(self, workflow_id: str, waiting: dict[str, Any] | None) -> None:
        w = m.Workflow
        async with self.workflows.sessions.begin() as session:
            await session.execute(
                update(w).where(w.id == workflow_id, w.state.not_in(TERMINAL_STATES)).values(waiting=waiting)
            )

    async def workflow_state(self, change: StateChange) -> None:
        """Set the state (never overwriting an ended workflow). A budget refusal goes to
        ``waiting``, not ``error``: the workflow has not failed, and its final row must not
        keep it; a final state writes its error (``None`` on success) as the embedded engine does."""
        await self.set_state(change)

    async def set_state(self, change: StateChange) -> bool:
        """:meth:`workflow_state`; returns whether a row was changed (``False``: there is no
        such workflow, or it has ended)."""
        values: dict[str, Any] = {"state": change.state.value, "updated_at": datetime.now(UTC)}
        values["waiting"] = budget_wait(change.error) if change.state is WorkflowState.WAITING_FOR_BUDGET else None
        for key in ("output", "revision_count"):
            value = getattr(change, key)
            if value is not None:
                values[key] = value
        if change.state.is_terminal:
            values["error"] = change.error
            values["completed_at"] = values["updated_at"]
        w = m.Workflow
        async with self.workflows.sessions.begin() as session:
            done = await session.execute(
                update(w).where(w.id == change.workflow_id, w.state.not_in(TERMINAL_STATES)).values(**values)
            )
        return bool(getattr(done, "rowcount", 0))
