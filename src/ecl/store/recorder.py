"""Run records written straight through the async repositories.

Used where the embedded engine's group-commit writer is not running (the Restate engine:
its records are written inside journaled ``ctx.run`` blocks, so a replay never writes them
twice).

With a ``writer`` (a sync engine: pysqlite or psycopg), the writes of a run (its state, step
rows, the settling of a dead attempt's rows) are Core statements run on a
:class:`~ecl.store.database.WriterThread`: cheaper in CPU than the async ORM session, and on
SQLite the run's writes queue in the process instead of contending for the database's lock
(what made ``database is locked`` appear under many concurrent workflows).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ecl.core.ids import new_record_id
from ecl.core.records import LlmCall, StateChange, StepFinished, StepStarted
from ecl.core.state import WorkflowState
from ecl.core.waiting import budget_wait, rate_limit_wait
from ecl.store.database import WriterThread
from ecl.store.repositories import (
    LlmCallRecord,
    LlmCallRepository,
    StepExecutionRepository,
    WorkflowRepository,
    finish_step,
    insert_workflow,
    interrupt_pending_calls,
    interrupt_running_steps,
    set_workflow,
    start_step,
    workflow_exists,
)

__all__ = ["SqlRecorder"]

T = TypeVar("T")


def _settle(conn: Connection, workflow_id: str) -> None:
    conn.execute(*interrupt_running_steps(workflow_id))
    conn.execute(*interrupt_pending_calls(workflow_id))


class SqlRecorder:
    """Step, LLM-call and workflow-state records on an async engine."""

    def __init__(self, db: AsyncEngine, *, writer: Engine | None = None) -> None:
        self.workflows = WorkflowRepository(db)
        self.steps = StepExecutionRepository(db)
        self.calls = LlmCallRepository(db)
        self._running: dict[str, str] = {}  # execution id -> step id, for a wait's ``step_id``
        self._writer = WriterThread(writer, name="ecl-records") if writer is not None else None

    async def _transaction(self, statements: Callable[[Connection], T]) -> T:
        """``statements`` in one transaction: on the writer thread when there is a writer."""
        if self._writer is None:
            async with self.workflows.db.begin() as conn:
                return await conn.run_sync(statements)
        return await self._writer.run(statements)

    async def close(self) -> None:
        """Dispose of the engines (and stop the writer thread)."""
        if self._writer is not None:
            self._writer.close()
            self._writer.engine.dispose()
        await self.workflows.db.dispose()

    async def step_started(self, step: StepStarted) -> str:
        """Insert a running step row."""
        execution_id = new_record_id()
        statement = start_step(
            id=execution_id,
            workflow_id=step.workflow_id,
            step_id=step.step_id,
            attempt=step.attempt,
            iteration=step.iteration,
            input=step.input,
        )
        await self._transaction(lambda conn: conn.execute(*statement))
        self._running[execution_id] = step.step_id
        return execution_id

    async def step_finished(self, execution_id: str, result: StepFinished) -> None:
        """Complete the step row."""
        self._running.pop(execution_id, None)
        statement = finish_step(
            execution_id, state=result.state, output=result.output, error=result.error, tokens=result.total_tokens
        )
        await self._transaction(lambda conn: conn.execute(*statement))

    async def llm_call_sent(self, call: LlmCall) -> None:
        """Insert the ``pending`` LLM call row (committed before the request goes out)."""
        await self.calls.record(LlmCallRecord(**call.row(call.call_id, datetime.now(UTC))))

    async def llm_call(self, call: LlmCall) -> None:
        """Settle the call's row (insert it when it was never recorded as pending)."""
        await self.calls.settle(LlmCallRecord(**call.row(call.call_id or new_record_id(), datetime.now(UTC))))

    async def interrupted(self, workflow_id: str) -> None:
        """Settle what a dead attempt left in flight: ``running`` step rows and ``pending``
        LLM calls of the workflow become ``interrupted`` (one transaction: this is on the way
        into every run on Restate)."""
        await self._transaction(lambda conn: _settle(conn, workflow_id))

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
        write = set_workflow(workflow_id, {"waiting": waiting})
        await self._transaction(lambda conn: conn.execute(*write))

    async def workflow_state(self, change: StateChange) -> None:
        """Set the state (never overwriting an ended workflow). A budget refusal goes to
        ``waiting``, not ``error``: the workflow has not failed, and its final row must not
        keep it; a final state writes its error (``None`` on success) as the embedded engine does."""
        await self.set_state(change)

    async def set_state(
        self, change: StateChange, *, settle: bool = False, create: Callable[[], dict[str, Any]] | None = None
    ) -> bool:
        """:meth:`workflow_state`; returns whether a row was changed (``False``: there is no
        such workflow, or it has ended). With ``settle``, what a dead attempt left in flight
        is settled first (:meth:`interrupted`) in the same transaction. With ``create`` (the
        columns of a new row, :func:`~ecl.store.repositories.new_workflow_values`), a workflow
        that has no row gets one, then the change, in the same transaction (an
        ``IntegrityError`` when another process inserted it meanwhile: then the row is there)."""
        values: dict[str, Any] = {"state": change.state.value, "updated_at": datetime.now(UTC)}
        values["waiting"] = budget_wait(change.error) if change.state is WorkflowState.WAITING_FOR_BUDGET else None
        for key in ("output", "revision_count"):
            value = getattr(change, key)
            if value is not None:
                values[key] = value
        if change.state.is_terminal:
            values["error"] = change.error
            values["completed_at"] = values["updated_at"]

        wid = change.workflow_id

        def write(conn: Connection) -> bool:
            if settle:
                _settle(conn, wid)
            if conn.execute(*set_workflow(wid, values)).rowcount:
                return True
            if create is None or conn.execute(*workflow_exists(wid)).first() is not None:
                return False  # no row and none to create, or it has ended
            conn.execute(*insert_workflow(create()))
            return bool(conn.execute(*set_workflow(wid, values)).rowcount)

        return await self._transaction(write)
