"""What a code-first workflow's function receives: :class:`WorkflowContext`.

It is the engine's :class:`~ecl.core.DurableContext` (every durable operation passes
straight through: the journal is the engine's) plus what turns a step call into one
journaled step: the step executor, the run's recorder, and the bookkeeping that makes a
code-first run's :class:`~ecl.core.WorkflowResult` look like a graph run's (outputs by
step, step metadata, tokens, revisions).

Journal names (compatibility data, the same as the graph's): a step call is one ``ctx.run``
named ``step:<name>`` for the first call of that step in the run and ``step:<name>:<n>``
for the n-th later one (or the iteration given with ``handle.iteration(n)``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ecl.core.durable import DurableContext, JsonValue
from ecl.core.errors import StepError, UserError
from ecl.core.metadata import NO_TOKENS, StepMetadata
from ecl.core.policy import RetryPolicy
from ecl.core.records import StateChange
from ecl.core.state import WorkflowState
from ecl.steps.execution import StepExecution
from ecl.steps.executor import StepExecutor
from ecl.steps.step import Step
from ecl.workflows.budget import RunBudget
from ecl.workflows.orchestrator import STATE_REVISIONS, journal_name
from ecl.workflows.recorder import WorkflowRecorder

__all__ = ["WorkflowContext"]


class WorkflowContext:
    """The durable context of one code-first workflow run.

    Between steps a workflow may use only what this offers (``run``, ``get``/``set``,
    ``promise``, ``sleep``, ``now``, ``uuid``) and its steps: everything else it does is
    re-executed on replay, so it must be deterministic (no clock, randomness or I/O of its
    own; call a step or ``run`` for those).
    """

    def __init__(
        self,
        ctx: DurableContext,
        executor: StepExecutor,
        recorder: WorkflowRecorder,
        budget: RunBudget | None = None,
    ) -> None:
        self._ctx = ctx
        self._executor = executor
        self._recorder = recorder
        self.budget = budget if budget is not None else RunBudget(ctx, recorder)
        """The run's budget (limits, spend, top-up rounds), as for a graph run."""
        self._calls: dict[str, int] = {}
        self.outputs: dict[str, Any] = {}
        """The latest output of every step, by step name (as in a graph run's result)."""
        self.steps: list[StepMetadata] = []
        """Metadata of every step run, in journal order of completion."""
        self.tokens = NO_TOKENS
        """Tokens used by the steps so far."""
        self.revisions = 0
        """The revision count (see :meth:`record_revision`)."""
        self.machinery_error: BaseException | None = None
        """The last failure of the engine underneath (not a step's): never a workflow's fault."""

    @property
    def cost(self) -> Decimal:
        """What the steps' LLM calls cost so far (USD), refused steps' calls included."""
        return self.budget.spent_usd

    @property
    def workflow_id(self) -> str:
        """The id of the running workflow."""
        return self._ctx.workflow_id

    @property
    def durable(self) -> DurableContext:
        """The engine's context underneath."""
        return self._ctx

    async def _through(self, op: Awaitable[Any]) -> Any:
        try:
            return await op
        except (StepError, UserError):
            raise
        except Exception as exc:
            self.machinery_error = exc
            raise

    # ------------------------------------------------------------------ steps

    def call_step(
        self, step: Step[Any, Any], input: dict[str, Any], *, iteration: int | None
    ) -> Awaitable[dict[str, Any]]:
        """Run ``step`` on ``input`` as one journaled call (what a step handle does).

        The journal name is fixed now, when the call is made, so concurrent calls
        (``asyncio.gather``) are named and positioned by the order they were made in.
        """
        name = step.id
        count = self._calls.get(name, 0)
        self._calls[name] = count + 1
        n = count if iteration is None else iteration
        return self._call(step, name, dict(input), n)

    async def _call(self, step: Step[Any, Any], name: str, input: dict[str, Any], iteration: int) -> dict[str, Any]:
        fresh: list[StepExecution] = []
        execute = self._executor.journaled(
            step, input, fresh, workflow_id=self.workflow_id, iteration=iteration, recorder=self._recorder
        )
        # Within the run's budget: a refused call is not sent; the run fails or waits for a top-up.
        try:  # what _through does, inline: one coroutine less held by every running step
            raw = await self.budget.run(journal_name(name, iteration), name, execute)
        except (StepError, UserError):
            raise
        except Exception as exc:
            self.machinery_error = exc
            raise
        # Run just now: the object is at hand. Replayed: rebuilt from the journal.
        execution = fresh[-1] if fresh else StepExecution.model_validate(raw)
        self.outputs[name] = execution.output
        self.steps.append(execution.metadata)
        if execution.metadata.llm_tokens_used is not None:
            self.tokens = self.tokens + execution.metadata.llm_tokens_used
        return execution.output

    async def record_revision(self, count: int) -> None:
        """Count a revision: durable state ``revision_count`` and the workflow's record.

        Shown by ``ecl status`` and the API as the workflow's revision count, as for a
        graph's revision loop.
        """
        await self.set(STATE_REVISIONS, count)
        self.revisions = count
        await self._through(
            self._recorder.workflow_state(StateChange(self.workflow_id, WorkflowState.RUNNING, revision_count=count))
        )

    # ------------------------------------------------------------------ DurableContext

    async def run(
        self,
        name: str,
        fn: Callable[[], Awaitable[JsonValue]],
        *,
        retry: RetryPolicy | None = None,
    ) -> JsonValue:
        """Run ``fn`` once and journal its JSON result under ``name`` (replay returns it)."""
        return await self._through(self._ctx.run(name, fn, retry=retry))

    async def get(self, key: str) -> JsonValue | None:
        """Durable workflow state: the value of ``key`` at this point of the run, or ``None``."""
        return await self._through(self._ctx.get(key))

    async def set(self, key: str, value: JsonValue) -> None:
        """Durable workflow state: store ``value`` (JSON) under ``key``."""
        await self._through(self._ctx.set(key, value))

    async def promise(self, name: str) -> JsonValue:
        """Wait for the durable promise ``name`` (``ecl signal`` / ``POST .../signal``)."""
        return await self._through(self._ctx.promise(name))

    async def sleep(self, delta: timedelta) -> None:
        """Durable sleep: a restart does not restart the timer."""
        await self._through(self._ctx.sleep(delta))

    async def now(self) -> datetime:
        """The current UTC time, the same on replay."""
        value: datetime = await self._through(self._ctx.now())
        return value

    async def uuid(self) -> str:
        """A random UUID, the same on replay."""
        value: str = await self._through(self._ctx.uuid())
        return value
