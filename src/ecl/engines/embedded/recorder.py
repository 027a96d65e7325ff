"""Run records (workflows, step_executions, llm_calls) written through the group-commit writer.

The writes are queued without waiting: they are committed in the same batch as, or an
earlier batch than, the next journal entry of the workflow, so a completed step's rows
are durable no later than its journal entry. State changes are fenced on the owner, so
a worker that lost its lease (or a workflow cancelled from elsewhere) is never
overwritten.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table

from ecl.core.ids import new_record_id
from ecl.core.records import LlmCall, StateChange, StepFinished, StepStarted
from ecl.core.state import WorkflowState
from ecl.core.waiting import budget_wait, rate_limit_wait
from ecl.engines.embedded.statements import Statements
from ecl.engines.embedded.writer import DatabaseWriter, FencedUpdate, Insert

__all__ = ["Listener", "WriterRecorder"]

Listener = Callable[[dict[str, Any]], None]
"""Receives progress events (``{"event": "step_started", ...}``) for display."""


class WriterRecorder:
    """Implements the orchestrator's ``WorkflowRecorder`` on the embedded writer."""

    def __init__(
        self,
        writer: DatabaseWriter,
        tables: dict[str, Table],
        sql: Statements,
        *,
        owner: str,
        listener: Listener | None = None,
        stored_state: WorkflowState | None = None,
    ) -> None:
        self._writer = writer
        self._stored = stored_state
        """The workflow's state as its row holds it (written by this run, ``waiting`` empty);
        ``None``: not known. A change to that same state is then not written again."""
        self._steps = tables["step_executions"]
        self._calls = tables["llm_calls"]
        self._owner = owner
        self._sql = sql
        self._listener = listener
        # Each running attempt: its step (so its end is shown under its own name when sibling
        # steps run concurrently) and the insert of its row (ticket, and the write while the
        # writer holds it), so a completion that comes before the insert is committed is
        # written in that insert. A weak reference: once committed, the row is not kept by
        # each of thousands of running steps.
        self._running: dict[str, tuple[str, int, weakref.ref[Insert]]] = {}

    def _emit(self, event: str, **fields: Any) -> None:
        if self._listener is not None:
            self._listener({"event": event, **fields})

    async def llm_waiting(
        self, workflow_id: str, execution_id: str, reason: str, seconds: float, model: str = ""
    ) -> None:
        """A call of the step waits for capacity (rate limit): a progress event, and the
        workflow's ``waiting`` (cleared by :meth:`llm_waited`)."""
        running = self._running.get(execution_id)
        step_id = running[0] if running is not None else None
        self._set_waiting(workflow_id, rate_limit_wait(model, reason, seconds, step_id))
        self._emit("llm_waiting", workflow_id=workflow_id, step_id=step_id, reason=reason, wait_s=round(seconds, 2))

    async def llm_waited(self, workflow_id: str, execution_id: str) -> None:
        """The call that waited goes on: the workflow no longer waits."""
        self._set_waiting(workflow_id, None)

    def _set_waiting(self, workflow_id: str, waiting: dict[str, Any] | None) -> None:
        self._stored = None  # the row waits now: the next state change writes (and clears it)
        params = {"b_id": workflow_id, "b_owner": self._owner, "b_waiting": waiting}
        self._writer.post(FencedUpdate(self._sql.set_waiting, params, workflow_id, self._owner))

    async def step_started(self, step: StepStarted) -> str:
        """Queue a ``running`` step_executions row; returns its id."""
        execution_id = new_record_id()
        row = {
            "id": execution_id,
            "workflow_id": step.workflow_id,
            "step_id": step.step_id,
            "attempt": step.attempt,
            "iteration": step.iteration,
            "state": "running",
            "input": step.input,
            "output": None,
            "error": None,
            "started_at": datetime.now(UTC),
            "completed_at": None,
            "tokens_used": None,
        }
        insert = Insert(self._steps, row)
        self._running[execution_id] = (step.step_id, self._writer.post(insert), weakref.ref(insert))
        if self._listener is not None:
            self._emit(
                "step_started",
                workflow_id=step.workflow_id,
                execution_id=execution_id,
                step_id=step.step_id,
                attempt=step.attempt,
                iteration=step.iteration,
            )
        return execution_id

    async def step_finished(self, execution_id: str, result: StepFinished) -> None:
        """Queue the step_executions row's completion: in the row's insert while that is
        still queued (one write instead of two in the same transaction), else an update.
        Only a completion is folded in: a failure's error is not known to be JSON, and
        writing it apart keeps a bad one from losing the row."""
        now, tokens = datetime.now(UTC), result.total_tokens
        running = self._running.pop(execution_id, None)
        insert = running[2]() if running is not None else None
        if running is not None and insert is not None and result.state == "completed" and result.error is None:
            row = insert.row

            def complete() -> None:
                row.update(state=result.state, output=result.output, completed_at=now, tokens_used=tokens)

            folded = self._writer.amend(running[1], complete)
        else:
            folded = False
        if not folded:
            params = {
                "b_id": execution_id,
                "b_state": result.state,
                "b_output": result.output,
                "b_error": result.error,
                "b_now": now,
                "b_tokens": tokens,
            }
            self._writer.post(FencedUpdate(self._sql.step_finished, params))
        step_id = running[0] if running is not None else None
        if self._listener is not None:
            self._emit(
                "step_finished",
                execution_id=execution_id,
                step_id=step_id,
                state=result.state,
                tokens=result.total_tokens,
            )

    async def llm_call_sent(self, call: LlmCall) -> None:
        """Insert the ``pending`` llm_calls row and wait until it is committed: the request
        goes out only once its record would survive a crash."""
        await self._writer.submit(Insert(self._calls, call.row(call.call_id, datetime.now(UTC))))

    async def llm_call(self, call: LlmCall) -> None:
        """Queue the settling of the call's row (or its insert, when it was never sent as pending)."""
        if not call.call_id:
            self._writer.post(Insert(self._calls, call.row(new_record_id(), datetime.now(UTC))))
        else:
            params = {
                "b_id": call.call_id,
                "b_model": call.model,
                "b_input": call.usage.input,
                "b_output": call.usage.output,
                "b_cache_creation": call.usage.cache_creation,
                "b_cache_read": call.usage.cache_read,
                "b_latency": call.latency_ms,
                "b_outcome": call.outcome,
                "b_error_kind": call.error_kind,
                "b_cost": call.cost_usd,
                "b_reply": call.reply,
            }
            self._writer.post(FencedUpdate(self._sql.settle_call, params))
        self._emit("llm_call", workflow_id=call.workflow_id, tokens=call.usage.total, outcome=call.outcome)

    async def workflow_state(self, change: StateChange) -> None:
        """Queue a fenced state change (never overwrites an ended workflow)."""
        state, wid = change.state, change.workflow_id
        if state.is_terminal:
            # The engine writes the terminal row itself, with the full result.
            self._emit("workflow_state", workflow_id=wid, state=state.value)
            return
        waiting = budget_wait(change.error) if state is WorkflowState.WAITING_FOR_BUDGET else None
        # Not written when the row says so already (a run's first "running", just after its insert).
        if state is not self._stored or waiting is not None or change.revision_count is not None:
            self._stored = state if waiting is None else None
            params: dict[str, Any] = {
                "b_id": wid,
                "b_owner": self._owner,
                "b_state": state.value,
                "b_waiting": waiting,
                "b_now": datetime.now(UTC),
            }
            if change.revision_count is None:
                stmt = self._sql.set_state
            else:
                stmt = self._sql.set_state_and_revisions
                params["b_revisions"] = change.revision_count
            self._writer.post(FencedUpdate(stmt, params, wid, self._owner))
        self._emit(
            "workflow_state",
            workflow_id=wid,
            state=state.value,
            revision_count=change.revision_count,
            error=change.error,
        )
