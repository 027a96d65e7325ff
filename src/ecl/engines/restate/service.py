"""ECL's workflows as one Restate workflow service, ``EclWorkflow``.

* ``run`` (the workflow's main handler, once per workflow id) executes any registered
  definition through the same :class:`~ecl.workflows.WorkflowOrchestrator` the embedded
  engine uses; its request is ``{"definition_id": ..., "input": {...}}`` (and, when the
  workflow was submitted with tracing on, ``"trace"``: the W3C ``traceparent`` its runs
  continue, durable as the request is) and its response the
  :class:`~ecl.core.WorkflowResult` as JSON (a failed workflow is a *successful* invocation
  whose result has ``state: failed``; a cancelled one fails with 409 ``cancelled``);
* ``signal`` (shared) resolves a durable promise: ``{"name": "approval", "payload": {...}}``
  resolves the first unresolved round of ``approval``, ``approval#2``, ..., and records it
  as the embedded engine does, a ``promises`` row (the round's name, the payload, the
  journaled time it was resolved), so the trace shows it;
* ``status`` (shared) reports the durable state (``revision_count``, ``current_draft``).

Database records are replay-safe: step and LLM-call rows are written inside the step's
journaled run (so they are written again only when the step itself runs again, at least
once); workflow-state changes are journaled runs of their own (``record:state:N``); the
final row with the whole result is written last, not journaled: it is a conditional update
(never over an ended row), so writing it again on a replay changes nothing (a journal from
before this, with a ``record:final`` run, still replays); a signal's row is the ``signal``
handler's ``record:signal`` (inserted unless present, retried for at most
:data:`SIGNAL_RECORD_RETRY`). Journal names are compatibility data.

What an attempt that died left in flight (``running`` step rows, ``pending`` LLM calls) is
settled as ``interrupted`` before the next attempt's first write, in that write's
transaction when it is a state write: nothing is settled on the way in, and one attempt
runs at a time, so a row still in flight then is a dead attempt's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import restate
import structlog
from restate import RunOptions, TerminalError
from sqlalchemy.exc import IntegrityError

from ecl.core.errors import ConflictError, EclError, WorkflowCancelled
from ecl.core.records import LlmCall, StateChange, StepFinished, StepStarted
from ecl.core.results import WorkflowResult
from ecl.core.rules import APPROVAL_PROMISE, cancelled_result, next_round, submission_hash
from ecl.core.state import WorkflowState
from ecl.engines.restate.context import CANCELLED_STATUS, RestateDurableContext
from ecl.observability.logging import bind_workflow
from ecl.observability.tracing import workflow_span
from ecl.store.progress import cancelled_result_from_records
from ecl.store.recorder import SqlRecorder
from ecl.store.repositories import new_workflow_values
from ecl.workflows import WorkflowRecorder

__all__ = ["SERVICE_NAME", "JournaledRecorder", "Orchestrator", "build_service", "ensure_workflow_row"]

SERVICE_NAME = "EclWorkflow"
"""The Restate workflow service's name (compatibility data: it is in Restate's journal)."""

SIGNAL_RECORD_RETRY = RunOptions[None](
    max_attempts=6, max_duration=timedelta(seconds=30), initial_retry_interval=timedelta(seconds=0.5)
)
"""How the ``signal`` handler retries writing the signal's ``promises`` row: 6 attempts over
about 15 s (0.5 s, doubling), at most 30 s; then it gives the row up (a warning)."""

_log = structlog.get_logger("ecl.restate")

T = TypeVar("T")


class Orchestrator(Protocol):
    """What the service runs: :class:`~ecl.workflows.WorkflowOrchestrator` or a test double."""

    async def run(
        self, ctx: Any, definition_id: str, input: dict[str, Any], *, recorder: WorkflowRecorder
    ) -> WorkflowResult:
        """Execute one workflow on a durable context."""
        ...


async def ensure_workflow_row(recorder: SqlRecorder, workflow_id: str, definition_id: str, input: Any) -> None:
    """Create the ``workflows`` row unless it exists (a workflow started on Restate directly)."""
    if await recorder.workflows.find(workflow_id) is not None:
        return
    digest = submission_hash(definition_id, input)
    with contextlib.suppress(IntegrityError, ConflictError):  # created meanwhile by the engine's submit
        await recorder.workflows.create(workflow_id, definition_id, input, input_hash=digest)


class JournaledRecorder:
    """The :class:`~ecl.workflows.WorkflowRecorder` of one Restate invocation.

    Step and LLM-call rows pass straight through: they are written from inside the step's
    journaled run. Non-final workflow-state writes become journaled runs of their own, so a
    replay does not repeat them; they also create the ``workflows`` row when the workflow was
    started on Restate directly (not through :class:`RestateEngine`). Final states are left to
    the service, which writes the whole result once (:meth:`final_state`).

    The attempt's first write settles what a dead attempt left in flight first (see the
    module docstring); the writes after it wait for that.
    """

    def __init__(self, ctx: restate.WorkflowContext, inner: SqlRecorder, definition_id: str, input: Any) -> None:
        self._ctx = ctx
        self._inner = inner
        self._wid = ctx.key()
        self._definition_id = definition_id
        self._input = input
        self._n = 0
        self._settled = False
        self._settling = asyncio.Lock()

    async def _write(self, write: Callable[[bool], Awaitable[T]]) -> T:
        """``write(settle)``: ``settle`` is true for the attempt's first write only."""
        if not self._settled:
            async with self._settling:
                if not self._settled:
                    done = await write(True)
                    self._settled = True
                    return done
        return await write(False)

    async def _plain(self, write: Callable[[], Awaitable[T]]) -> T:
        async def apply(settle: bool) -> T:
            if settle:
                await self._inner.interrupted(self._wid)
            return await write()

        return await self._write(apply)

    def _new_row(self) -> dict[str, Any]:
        """The columns of the workflow's row, for a workflow started on Restate directly."""
        digest = submission_hash(self._definition_id, self._input)
        return new_workflow_values(self._wid, self._definition_id, self._input, input_hash=digest)

    async def _state(self, change: StateChange) -> None:
        async def apply(settle: bool) -> None:
            # One transaction: the change, and when the workflow has no row (started on
            # Restate directly) the row first (an ended one is left as it is).
            try:
                await self._inner.set_state(change, settle=settle, create=self._new_row)
            except IntegrityError:  # its row was inserted meanwhile (the engine's submit)
                await self._inner.set_state(change, settle=settle)

        await self._write(apply)

    async def step_started(self, step: StepStarted) -> str:
        """Insert a running step row (inside the step's run)."""
        return await self._plain(lambda: self._inner.step_started(step))

    async def step_finished(self, execution_id: str, result: StepFinished) -> None:
        """Complete the step row (inside the step's run)."""
        await self._plain(lambda: self._inner.step_finished(execution_id, result))

    async def llm_call_sent(self, call: LlmCall) -> None:
        """Insert a pending LLM call row (inside the step's run)."""
        await self._plain(lambda: self._inner.llm_call_sent(call))

    async def llm_call(self, call: LlmCall) -> None:
        """Settle the LLM call row (inside the step's run)."""
        await self._plain(lambda: self._inner.llm_call(call))

    async def llm_waiting(
        self, workflow_id: str, execution_id: str, reason: str, seconds: float, model: str = ""
    ) -> None:
        """A call waits for capacity (inside the step's run): the workflow's ``waiting``."""
        await self._plain(lambda: self._inner.llm_waiting(workflow_id, execution_id, reason, seconds, model=model))

    async def llm_waited(self, workflow_id: str, execution_id: str) -> None:
        """The call that waited goes on (inside the step's run)."""
        await self._plain(lambda: self._inner.llm_waited(workflow_id, execution_id))

    async def final_state(self, change: StateChange) -> None:
        """The final row (not journaled: a conditional update, the same again on a replay)."""
        await self._state(change)

    async def workflow_state(self, change: StateChange) -> None:
        """A journaled state write (final states are written by the service)."""
        if change.state.is_terminal:
            return
        self._n += 1

        async def write() -> None:
            await self._state(change)

        try:
            await self._ctx.run_typed(f"record:state:{self._n}", write)
        except TerminalError as err:
            if err.status_code == CANCELLED_STATUS:
                raise WorkflowCancelled(change.workflow_id) from None
            raise


def _replaying(ctx: restate.WorkflowContext) -> bool:
    """Whether the invocation's journal holds commands past this point (the SDK's VM knows)."""
    vm = getattr(ctx, "vm", None)
    return bool(vm is not None and vm.is_replaying())


def build_service(orchestrator: Orchestrator, recorder: SqlRecorder) -> restate.Workflow:
    """The Restate workflow service running ECL definitions."""
    service = restate.Workflow(SERVICE_NAME, description="ECL durable AI workflows")

    @service.main(name="run")
    async def run(ctx: restate.WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
        # Every line of the invocation carries the workflow id: the tasks Restate starts for
        # journaled runs (the steps) copy this context when they are created — the current
        # span too. Each attempt of the invocation (a replay after a crash, a suspension) is
        # one run span, a child of the trace context in the invocation's request, so a
        # workflow is one trace; replayed steps have no spans (their runs are not executed).
        trace_context = request.get("trace")
        with (
            bind_workflow(ctx.key()),
            workflow_span(ctx.key(), trace_context if isinstance(trace_context, str) else None),
        ):
            return await _run(ctx, request)

    async def _run(ctx: restate.WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
        wid = ctx.key()
        definition_id = str(request.get("definition_id"))
        data = dict(request.get("input") or {})
        durable = RestateDurableContext(ctx)
        journaled = JournaledRecorder(ctx, recorder, definition_id, data)
        # A step row still `running` (an LLM call still `pending`) when this attempt first
        # writes was left by an attempt whose endpoint died: the recorder settles it as
        # `interrupted` then, as the embedded engine does when it recovers a workflow.
        cancelled = False
        try:
            result = await orchestrator.run(durable, definition_id, data, recorder=journaled)
        except WorkflowCancelled:
            cancelled = True
            result = cancelled_result(wid, definition_id)
        except EclError as err:  # e.g. an unknown definition: the run fails, it is not retried
            result = WorkflowResult(
                workflow_id=wid, definition_id=definition_id, state=WorkflowState.FAILED, error=err.to_dict()
            )
        document = result.model_dump(mode="json")

        async def final() -> None:
            if not cancelled:
                await journaled.final_state(
                    StateChange(wid, result.state, output=document, error=result.error, revision_count=result.revisions)
                )
                return
            # Keep the outputs, steps and tokens it had, as its records hold them.
            await recorder.interrupted(wid)  # the attempt the cancellation cut short (a dead one's too)
            await ensure_workflow_row(recorder, wid, definition_id, data)
            async with recorder.workflows.db.connect() as conn:
                ended = await conn.run_sync(cancelled_result_from_records, wid, definition_id)
            await recorder.workflow_state(
                StateChange(
                    wid,
                    ended.state,
                    output=ended.model_dump(mode="json"),
                    error=ended.error,
                    revision_count=ended.revisions,
                )
            )

        if _replaying(ctx):  # journaled by an earlier version as a run of its own: replay it
            await ctx.run_typed("record:final", final)
        else:
            await final()
        if cancelled:
            raise TerminalError("cancelled", status_code=CANCELLED_STATUS)
        return document

    @service.handler(name="signal")
    async def signal(ctx: restate.WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        base = str(request.get("name") or APPROVAL_PROMISE)
        # Rounds are resolved in order, so the first unresolved one is found by walking them.
        resolved: list[str] = []
        while True:
            target = next_round(base, resolved)
            promise: Any = ctx.promise(target, type_hint=object)
            if await promise.peek() is None:
                break
            resolved.append(target)
        payload = request.get("payload")
        value = payload if payload is not None else {}
        # Taken before the promise resolves: in the trace, the signal precedes what it causes.
        at = datetime.fromtimestamp(await ctx.time(), UTC)
        await promise.resolve(value)
        await _record_signal(ctx, target, value, at)
        return {"resolved": target}

    async def _record_signal(ctx: restate.WorkflowSharedContext, name: str, payload: Any, at: datetime) -> None:
        # The ``promises`` row the embedded engine writes when it resolves a promise, so the
        # trace shows the signal on Restate too. The promise is resolved already: a records
        # database that stays down costs the row (a warning), not the signal.
        wid = ctx.key()

        async def write() -> None:
            if await recorder.workflows.find(wid) is None:
                return  # started on Restate directly, its row not written yet: nothing to attach to
            with contextlib.suppress(IntegrityError):  # inserted meanwhile by an earlier attempt
                await recorder.workflows.add_signal(wid, name, payload, at)

        try:
            await ctx.run_typed("record:signal", write, SIGNAL_RECORD_RETRY)
        except TerminalError as err:
            reason = (err.message or "").splitlines()[:1]  # its first line, not the whole traceback
            _log.warning("signal not recorded", workflow_id=wid, promise=name, error="".join(reason))

    @service.handler(name="status")
    async def status(ctx: restate.WorkflowSharedContext) -> dict[str, Any]:
        return {
            "workflow_id": ctx.key(),
            "revision_count": await ctx.get("revision_count", type_hint=object),
            "current_draft": await ctx.get("current_draft", type_hint=object),
        }

    return service
