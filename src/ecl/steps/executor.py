"""Runs one step: validate input → execute with the retry policy → validate output."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn, TypedDict, Unpack

from pydantic import BaseModel

from ecl.artifacts.store import ArtifactStore
from ecl.core.errors import BudgetExceeded, EclError, StepError, StepTimeoutError, StepValidationError
from ecl.core.metadata import StepMetadata, built
from ecl.core.policy import step_may_retry
from ecl.core.records import StepFinished, StepStarted
from ecl.core.results import Failed, NeedsRevision, Success
from ecl.llm.budget import BudgetGuard
from ecl.llm.prices import PriceTable
from ecl.llm.provider import LlmProvider
from ecl.observability import metrics
from ecl.observability.logging import LazyLogger, bind_attempt, bind_step
from ecl.observability.tracing import step_span
from ecl.steps.context import RecordingLlm, StepContext
from ecl.steps.execution import StepExecution, TraceEvent
from ecl.steps.function import FunctionStep
from ecl.steps.prompts import PromptLibrary
from ecl.steps.recorder import NullRecorder, StepRecorder
from ecl.steps.registry import StepRegistry
from ecl.steps.step import Step
from ecl.steps.validation import validate_model

__all__ = ["StepExecutor", "StepOptions"]

_ZERO = Decimal(0)
"""What a step without LLM calls spent: one object for all (a ``Decimal`` is immutable)."""


class StepOptions(TypedDict, total=False):
    """How one run of a step is done (every option may be left out)."""

    iteration: int
    """Which run of the step this is in its workflow (revision rounds; default 0)."""
    recorder: StepRecorder | None
    """Where its attempts are recorded (default: the executor's)."""
    budget: BudgetGuard | None
    """Refuses an LLM call whose worst case would cross the run's budget."""
    timeout: float | None
    """Seconds each attempt may run (default: the step's own ``timeout``; ``None``: no limit),
    on the event loop's monotonic clock; an attempt over it is cancelled and fails with
    :class:`~ecl.core.StepTimeoutError` (retryable: the step's retry policy decides)."""
    fallback: Sequence[str] | None
    """The model chain of its LLM requests that name none (default: the step's own)."""
    record_as: str | None
    """Record it under this id instead of ``step.id`` (its step_executions rows and the
    returned execution; logs, metrics and errors still name ``step.id``)."""


class StepExecutor:
    """Executes registered steps with validation, retries, recording and tracing.

    Attempts are bounded by the step's :class:`~ecl.core.RetryPolicy`. An LLM failure is
    never retried here: the provider's own policy (``llm.retry``) is the one budget of an
    LLM request, so an :class:`~ecl.core.LlmError` that reaches the step fails it at once
    (see :mod:`ecl.core.policy`). Another attempt is made for the step's own retryable
    failures, such as an output that fails validation.
    """

    def __init__(
        self,
        registry: StepRegistry,
        llm: LlmProvider,
        *,
        recorder: StepRecorder | None = None,
        artifacts: ArtifactStore | None = None,
        prompts: PromptLibrary | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        prices: PriceTable | None = None,
    ) -> None:
        self.registry = registry
        self.llm = llm
        self.prices = prices if prices is not None else PriceTable.shipped()
        self.recorder: StepRecorder = recorder or NullRecorder()
        self.artifacts = artifacts
        self.prompts = prompts or PromptLibrary()
        self._sleep = sleep

    async def execute(
        self, step_id: str, input: dict[str, Any] | BaseModel, *, workflow_id: str, **options: Unpack[StepOptions]
    ) -> StepExecution:
        """Run the registered step ``step_id`` on ``input`` (see :meth:`execute_step`)."""
        return await self.execute_step(self.registry.get(step_id), input, workflow_id=workflow_id, **options)

    async def execute_step(
        self,
        step: Step[Any, Any],
        input: dict[str, Any] | BaseModel,
        *,
        workflow_id: str,
        **options: Unpack[StepOptions],
    ) -> StepExecution:
        """Run ``step`` (registered or not) on ``input``; raises :class:`StepError` when it
        cannot succeed (:class:`~ecl.core.BudgetExceeded`, never retried, when the budget
        refused a call). :class:`StepOptions` says what each option does.

        Every line logged meanwhile, by any module, carries ``step_id``, ``iteration`` and
        (from the first attempt on) ``attempt`` (:mod:`ecl.observability.logging`)."""
        execution: StepExecution = await self._run(
            step,
            input,
            None,
            options.get("budget"),
            workflow_id=workflow_id,
            iteration=options.get("iteration", 0),
            recorder=options.get("recorder"),
            timeout=options.get("timeout"),
            fallback=options.get("fallback"),
            record_as=options.get("record_as"),
        )
        return execution

    def journaled(
        self,
        step: Step[Any, Any] | str,
        input: dict[str, Any] | BaseModel,
        keep: list[StepExecution],
        *,
        workflow_id: str,
        iteration: int = 0,
        recorder: StepRecorder | None = None,
        timeout: float | None = None,
        fallback: Sequence[str] | None = None,
        record_as: str | None = None,
    ) -> Callable[[BudgetGuard | None], Awaitable[dict[str, Any]]]:
        """The run of ``step`` (a registered one by its id: looked up when it runs) that a
        workflow journals: called with the run's budget guard (``None``: unlimited), it runs
        the step as :meth:`execute_step` does, appends the :class:`StepExecution` to ``keep``
        and gives it as JSON (the journaled result, equal to ``model_dump(mode="json")``).
        The options are :class:`StepOptions`' (the guard is the call's argument). One
        coroutine per step, not a wrapper around :meth:`execute_step`: every running step
        holds the chain."""
        return _Journaled(self, step, input, keep, workflow_id, iteration, recorder, timeout, fallback, record_as)

    async def _run(
        self,
        step: Step[Any, Any] | str,
        input: dict[str, Any] | BaseModel,
        keep: list[StepExecution] | None,
        budget: BudgetGuard | None,
        *,
        workflow_id: str,
        iteration: int = 0,
        recorder: StepRecorder | None = None,
        timeout: float | None = None,
        fallback: Sequence[str] | None = None,
        record_as: str | None = None,
    ) -> Any:
        """The attempts of one step: its :class:`StepExecution`, or (``keep`` given) that
        appended to ``keep`` and its JSON."""
        if isinstance(step, str):
            step = self.registry.get(step)
        step_id = step.id
        label = record_as or step_id
        recorder = recorder or self.recorder
        log = LazyLogger("ecl.steps", workflow_id=workflow_id, step_id=step_id, iteration=iteration)
        with bind_step(step_id, iteration=iteration):
            started = datetime.now(UTC)
            # Built from values of their types (see core.metadata.built): not validated again.
            traces = [built(TraceEvent, kind="started", at=started, attempt=1, detail={"iteration": iteration})]

            # Invalid input fails fast: another attempt would see the same input.
            model = validate_model(step.input_model, input, step_id=step_id, where="input")
            if type(step).validate_input is not Step.validate_input:  # the default checks nothing
                try:
                    await step.validate_input(model)
                except StepValidationError as err:
                    err.step_id = step_id
                    err.retryable = False
                    raise
            raw_input = model.model_dump(mode="json")

            policy = step.retry_policy
            deadline = timeout if timeout is not None else getattr(step, "timeout", None)
            chain = tuple(fallback if fallback is not None else getattr(step, "fallback", ()))
            # A decorated function is called here (not through its ``execute``): one coroutine
            # less per step. A subclass may override ``execute``: then it is called.
            function = step if type(step) is FunctionStep else None
            attempt = 0
            spent = _ZERO  # every attempt's calls: a failed attempt's tokens were paid for too
            spent_tokens = 0
            while True:
                attempt += 1
                bind_attempt(attempt)
                execution_id = await recorder.step_started(
                    StepStarted(workflow_id, label, attempt, iteration=iteration, input=raw_input)
                )
                attempt_started = time.monotonic()
                llm = RecordingLlm(
                    self.llm,
                    recorder,
                    workflow_id=workflow_id,
                    execution_id=execution_id,
                    prices=self.prices,
                    budget=budget,
                    prompt_cache=bool(getattr(step, "prompt_cache", True)),
                    fallback=chain,
                )
                ctx = StepContext(
                    llm=llm,
                    workflow_id=workflow_id,
                    step_id=step_id,
                    attempt=attempt,
                    execution_id=execution_id,
                    iteration=iteration,
                    artifacts=self.artifacts,
                    prompts=self.prompts,
                )
                log.info("step attempt", attempt=attempt)
                try:
                    with step_span(step_id, attempt, iteration):
                        if deadline is None:  # no deadline: the attempt inline, no coroutine around it
                            try:
                                if function is not None:
                                    result = function.result(await function.fn(ctx, **function.arguments(model)))
                                else:
                                    result = await step.execute(ctx, model)
                            except Exception as exc:
                                _fail(ctx, exc)
                            output, feedback = await _checked(step, ctx, model, result)
                        else:
                            output, feedback = await self._bounded(step, ctx, model, deadline)
                except StepError as caught:
                    # A budget refusal stands even if the step's code caught it: never retried.
                    failure = budget.refusal if budget is not None and budget.refusal is not None else caught
                    failure.step_id = failure.step_id or step_id
                    kind = "validation_failed" if isinstance(failure, StepValidationError) else "attempt_failed"
                    traces.append(TraceEvent(kind=kind, attempt=attempt, detail=failure.to_dict()))
                    await recorder.step_finished(
                        execution_id, StepFinished("failed", error=failure.to_dict(), tokens=llm.usage)
                    )
                    metrics.step_finished(step_id, "failed", time.monotonic() - attempt_started)
                    if step_may_retry(failure) and attempt < policy.max_attempts:
                        wait = policy.delay(attempt)
                        log.warning("step attempt failed; retrying", error=failure.message, wait_s=wait)
                        traces.append(TraceEvent(kind="retry", attempt=attempt, detail={"wait_s": wait}))
                        await self._sleep(wait)
                        continue
                    # Over budget is the workflow's business (fail or wait), not an error of the step.
                    (log.info if isinstance(failure, BudgetExceeded) else log.error)(
                        "step failed", error=failure.message, attempts=attempt
                    )
                    if attempt > 1:
                        failure.message = f"{failure.message} (after {attempt} attempts)"
                        failure.args = (failure.message,)
                    if failure is caught:
                        raise
                    raise failure from None
                finally:
                    if llm.cost:  # (adding nothing would make a new zero, kept in the metadata)
                        spent += llm.cost
                    spent_tokens += llm.usage.total
                data = output.model_dump(mode="json")
                await recorder.step_finished(execution_id, StepFinished("completed", output=data, tokens=llm.usage))
                metrics.step_finished(step_id, "completed", time.monotonic() - attempt_started)
                completed = datetime.now(UTC)
                traces.append(built(TraceEvent, kind="completed", at=completed, attempt=attempt, detail={}))
                log.info("step completed", attempt=attempt, tokens=llm.usage.total)
                break
        # Every field given, each of its type: built without validating them again, and the
        # metadata (kept by the run, and in its result, for every step) and the execution
        # share one set of field names per class.
        metadata = built(
            StepMetadata,
            step_id=label,
            started_at=started,
            completed_at=completed,
            attempt=attempt,
            llm_tokens_used=llm.usage,
            llm_calls=llm.calls,
            cost_usd=spent,
            spent_tokens=spent_tokens,
            llm_models=list(llm.models),
        )
        execution = built(
            StepExecution, step_id=label, output=dict(data), feedback=feedback, metadata=metadata, traces=traces
        )
        if keep is None:
            return execution
        keep.append(execution)
        return execution.journal()

    async def _bounded(
        self, step: Any, ctx: StepContext, model: BaseModel, deadline: float
    ) -> tuple[BaseModel, str | None]:
        """One attempt, cancelled after ``deadline`` seconds (loop clock: monotonic)."""
        limit = asyncio.timeout(deadline)
        try:
            async with limit:
                return await self._attempt(step, ctx, model)
        except TimeoutError:
            if not limit.expired():
                raise  # the step's own timeout, not the deadline
            raise StepTimeoutError(
                f"step {ctx.step_id} attempt {ctx.attempt} exceeded its timeout of {deadline:g} s",
                timeout_seconds=deadline,
                step_id=ctx.step_id,
                retryable=True,
            ) from None

    async def _attempt(self, step: Any, ctx: StepContext, model: BaseModel) -> tuple[BaseModel, str | None]:
        try:
            result = await step.execute(ctx, model)
        except Exception as exc:
            _fail(ctx, exc)
        return await _checked(step, ctx, model, result)


@dataclass(slots=True)
class _Journaled:
    """What :meth:`StepExecutor.journaled` gives: the step and its options in one small
    object, called with the guard. Not a ``functools.partial`` with keywords: its keyword
    dict is copied again by ``partial(run, guard)`` (as the budget calls it), and each of
    thousands of concurrent runs holds both for as long as its step runs."""

    executor: StepExecutor
    step: Step[Any, Any] | str
    input: dict[str, Any] | BaseModel
    keep: list[StepExecution]
    workflow_id: str
    iteration: int
    recorder: StepRecorder | None
    timeout: float | None
    fallback: Sequence[str] | None
    record_as: str | None

    def __call__(self, budget: BudgetGuard | None) -> Awaitable[dict[str, Any]]:
        run: Awaitable[dict[str, Any]] = self.executor._run(
            self.step,
            self.input,
            self.keep,
            budget,
            workflow_id=self.workflow_id,
            iteration=self.iteration,
            recorder=self.recorder,
            timeout=self.timeout,
            fallback=self.fallback,
            record_as=self.record_as,
        )
        return run


def _fail(ctx: StepContext, exc: Exception) -> NoReturn:
    """Fail the attempt on a step's exception: a :class:`StepError` as it is; another
    :class:`EclError` as a step error of the same retryability; anything else, not retryable."""
    if isinstance(exc, StepError):
        raise exc
    if isinstance(exc, EclError):
        raise StepError(f"step {ctx.step_id}: {exc.message}", retryable=exc.retryable) from exc
    raise StepError(f"step {ctx.step_id} raised {type(exc).__name__}: {exc}", retryable=False) from exc


async def _checked(step: Any, ctx: StepContext, model: BaseModel, result: Any) -> tuple[BaseModel, str | None]:
    """The attempt's validated output and revision feedback, or the failure it returned."""
    if isinstance(result, Failed):
        error = result.error
        error.retryable = result.retryable
        raise error
    if not isinstance(result, Success | NeedsRevision):
        raise StepError(f"step {ctx.step_id} returned {type(result).__name__}, not a StepResult")
    # Output problems are often the model's whim: another attempt may do better.
    output = validate_model(step.output_model, result.output, step_id=ctx.step_id, where="output", retryable=True)
    if type(step).validate_output is not Step.validate_output:  # the default checks nothing
        await step.validate_output(output, model)
    feedback = result.feedback if isinstance(result, NeedsRevision) else None
    return output, feedback
