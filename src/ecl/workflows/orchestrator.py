"""Executes a workflow definition on a :class:`~ecl.core.DurableContext`.

Persisted names (compatibility data, pinned by a test; never change them):

- every step execution is exactly one ``ctx.run`` named ``step:<step_id>`` for its first
  run and ``step:<step_id>:<iteration>`` for iteration ≥ 1 (the n-th revision of a loop,
  or the n-th approval round for steps downstream of the loop);
- durable state ``current_draft`` (the loop's current draft) and ``revision_count``;
- human approval waits on the promise ``approval`` (round 1), then ``approval#2``,
  ``approval#3``... (a promise resolves once; ``Engine.signal(wid, "approval", ...)``
  resolves the first round not yet resolved). The payload is
  ``{"decision": "approve" | "revise", "feedback": str | null}``.

Scheduling: steps run in dependency order; the steps that become ready together run
concurrently (``asyncio.gather``), each started in definition order so that journal
positions never depend on completion order. A revision loop is never run concurrently
with other steps (it makes several durable calls, and their positions must not
interleave with a sibling's). When concurrent steps fail, every sibling still finishes
and the first failure in definition order is reported.

Bounds: a revision loop runs its reviser at most ``max_iterations`` times, then fails
with :class:`~ecl.core.MaxRevisionsExceeded` (``attempts`` = ``max_iterations``). With
approval (``input.require_approval`` or the definition's ``options.require_approval``)
the run waits, after every step has run, in state ``waiting_for_revision``. A human
``approve`` completes it. A human ``revise`` starts one *approval round*: the reviser runs
with the human's feedback, the validator judges the result and may ask for further
revisions (at most ``max_iterations`` revisions in the round, the human's included),
then the steps downstream of the validator run again (as iteration = the round number)
and the run waits for the next approval. At most ``max_iterations`` approval rounds are
accepted; one more ``revise`` fails the run with ``MaxRevisionsExceeded`` (step
``approval``). ``revision_count`` counts every revision, automatic or human. Each step
makes at most ``retry_policy.max_attempts`` attempts, each with at most
``llm.retry.max_attempts`` LLM requests.

Budgets: a run's limits are ``input.budget_usd`` / ``input.budget_tokens``, else the
definition's options, else the configured :class:`~ecl.llm.budget.BudgetPolicy`. Every step
runs through the run's :class:`~ecl.workflows.budget.RunBudget` (shared with code-first
workflows): a call that could cross the budget is not sent; the run then fails with
:class:`~ecl.core.BudgetExceeded`, or (``on_exceeded = "wait"``) waits in state
``waiting_for_budget`` on the promise ``budget`` (then ``budget#2``...) and runs the step
again as ``<journal name>#budget<round>`` (persisted names too; see that module).

Durable state is written with ``ctx.set`` and never read back with ``ctx.get``: replay
re-executes this code against the journal, which rebuilds the same values in the same
order; reading would return the latest value rather than the one at that point.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ecl.artifacts.store import ArtifactStore
from ecl.core.durable import DurableContext
from ecl.core.errors import DefinitionError, MaxRevisionsExceeded, StepError
from ecl.core.metadata import NO_TOKENS, StepMetadata
from ecl.core.records import StateChange
from ecl.core.results import WorkflowResult
from ecl.core.rules import APPROVAL_PROMISE, promise_name
from ecl.core.state import WorkflowState
from ecl.llm.budget import BudgetPolicy
from ecl.llm.prices import PriceTable
from ecl.llm.provider import LlmProvider
from ecl.observability.logging import LazyLogger
from ecl.steps.execution import StepExecution
from ecl.steps.executor import StepExecutor
from ecl.steps.prompts import PromptLibrary
from ecl.steps.registry import StepRegistry
from ecl.workflows.budget import BUDGET_PROMISE, RunBudget, budget_journal_name, resolve_limits
from ecl.workflows.definition import (
    RevisionLoop,
    StepDefinition,
    WorkflowDefinition,
    is_reference,
    literal_value,
)
from ecl.workflows.expression import ExpressionError, parse_expression, resolve_reference
from ecl.workflows.loader import DefinitionRegistry
from ecl.workflows.recorder import NullWorkflowRecorder, WorkflowRecorder

__all__ = [
    "APPROVAL_PROMISE",
    "BUDGET_PROMISE",
    "STATE_DRAFT",
    "STATE_REVISIONS",
    "WorkflowOrchestrator",
    "budget_journal_name",
    "journal_name",
    "promise_name",
]


STATE_DRAFT = "current_draft"
"""Durable state key of the revision loop's current draft."""
STATE_REVISIONS = "revision_count"
"""Durable state key of the number of revisions so far."""


def journal_name(step_id: str, iteration: int = 0) -> str:
    """The journal name of a step run (persisted: never change the format)."""
    return f"step:{step_id}" if iteration == 0 else f"step:{step_id}:{iteration}"


class _Run:
    """The bookkeeping of one orchestrator run (rebuilt identically on replay)."""

    def __init__(
        self,
        ctx: DurableContext,
        defn: WorkflowDefinition,
        data: dict[str, Any],
        budget: RunBudget,
        specs: Mapping[str, StepDefinition],
    ) -> None:
        self.ctx = ctx
        self.defn = defn
        self.input = data
        self.outputs: dict[str, Any] = {}
        self.steps: list[StepMetadata] = []
        self.tokens = NO_TOKENS
        self.budget = budget
        self.state: dict[str, Any] = {}
        self.revisions = 0
        self.skipped: frozenset[str] = _NONE_SKIPPED
        """Steps a condition skipped (a new set each time one is: rare, and most runs skip none)."""
        # Made once per loaded definition, not per run (a definition's lookups scan its lists).
        self.specs = specs
        self.has_loops = bool(defn.loops)

    def spec(self, step_id: str) -> StepDefinition:
        found = self.specs.get(step_id)
        return found if found is not None else self.defn.step(step_id)

    def scope(self, loop: dict[str, Any] | None = None) -> dict[str, Any]:
        # revision_count reads 0 before the first revision (without a durable write).
        state = {STATE_REVISIONS: 0, **self.state} if self.has_loops else self.state
        return {"input": self.input, "steps": self.outputs, "state": state, "loop": loop or {}}

    def absorb(self, execution: StepExecution) -> None:
        self.outputs[execution.step_id] = execution.output
        self.steps.append(execution.metadata)
        if execution.metadata.llm_tokens_used is not None:
            self.tokens = self.tokens + execution.metadata.llm_tokens_used

    @property
    def cost(self) -> Decimal:
        """What the run's LLM calls cost so far (USD), refused steps' calls included."""
        return self.budget.spent_usd


_NONE_SKIPPED: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Schedule:
    """The order in which a definition's steps (all, or a subset) run: rounds of the steps
    whose prerequisites all ran in earlier rounds, each round in definition order. Which
    steps a condition skips is decided as each round comes (a skipped step counts as run),
    so the rounds themselves are the same on every run: worked out once, not kept by each
    of thousands of concurrent runs as working sets across all of their awaits."""

    rounds: tuple[tuple[str, ...], ...]
    complete: bool
    """``False``: steps are left that no round can run (a cycle); the run fails after the rounds."""
    deps: dict[str, set[str]]
    """Each step's direct prerequisites (read only)."""
    conditions: dict[str, list[str]]
    """The conditions each step needs to hold (read only)."""
    specs: dict[str, StepDefinition]
    """The definition's steps by id (read only)."""

    @classmethod
    def of(cls, defn: WorkflowDefinition, subset: set[str] | None = None, whole: _Schedule | None = None) -> _Schedule:
        """The schedule of ``defn``'s steps (``subset``: of those only). ``whole``: the
        schedule of all of them, whose maps (the definition's, whatever the subset) are
        shared instead of made again for each loop round."""
        if whole is None:
            deps, conditions, specs = defn.dependencies(), defn.conditions(), {s.step_id: s for s in defn.steps}
        else:
            deps, conditions, specs = whole.deps, whole.conditions, whole.specs
        loop_only = defn.loop_only
        pending = [
            s.step_id for s in defn.steps if s.step_id not in loop_only and (subset is None or s.step_id in subset)
        ]
        # Kept incrementally (what each step still waits for, who waits for each step), so
        # a long chain costs no scan of every pending step per round.
        order = {step_id: index for index, step_id in enumerate(pending)}
        done = {s.step_id for s in defn.steps} - order.keys()
        waits = {s: len(deps[s] - done) for s in pending}
        dependents: dict[str, list[str]] = {}
        for s in pending:
            for d in deps[s] - done:
                dependents.setdefault(d, []).append(s)
        rounds: list[tuple[str, ...]] = []
        ready = [s for s in pending if not waits[s]]
        left = len(pending)
        while left and ready:
            rounds.append(tuple(ready))
            following: list[str] = []
            for step_id in ready:
                left -= 1
                for waiting in dependents.get(step_id, ()):
                    waits[waiting] -= 1
                    if not waits[waiting]:
                        following.append(waiting)
            ready = sorted(following, key=order.__getitem__)
        return cls(tuple(rounds), not left, deps, conditions, specs)


class WorkflowOrchestrator:
    """Runs definitions: dependency order, concurrency, conditions, bounded loops, approval."""

    def __init__(
        self,
        definitions: DefinitionRegistry,
        steps: StepRegistry,
        llm: LlmProvider,
        *,
        artifacts: ArtifactStore | None = None,
        prompts: PromptLibrary | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        prices: PriceTable | None = None,
        budget: BudgetPolicy | None = None,
    ) -> None:
        self.definitions = definitions
        self._schedules: dict[str, tuple[WorkflowDefinition, _Schedule]] = {}
        """By definition id: the loaded definition and its schedule (one per id)."""
        self.budget = budget or BudgetPolicy()
        self.steps = steps
        self.llm = llm
        self.executor = StepExecutor(
            steps,
            llm,
            artifacts=artifacts,
            prompts=prompts,
            sleep=sleep if sleep is not None else asyncio.sleep,
            prices=prices,
        )

    async def run(
        self,
        ctx: DurableContext,
        definition_id: str,
        input: dict[str, Any],
        *,
        recorder: WorkflowRecorder | None = None,
    ) -> WorkflowResult:
        """Execute (or, on replay, re-trace) one workflow.

        A step failure (any :class:`~ecl.core.StepError`, including
        :class:`~ecl.core.MaxRevisionsExceeded`) ends the run as ``failed`` with
        ``error=err.to_dict()`` in the result. Engine signals, cancellation and
        :class:`~ecl.core.NonDeterminismError` propagate. An unknown ``definition_id``
        raises :class:`~ecl.core.NotFoundError`.
        """
        rec: WorkflowRecorder = recorder or NullWorkflowRecorder()
        started = time.perf_counter()
        defn = self.definitions.get(definition_id)
        run = _Run(ctx, defn, dict(input), RunBudget(ctx, rec, self.budget), self._schedule(defn).specs)
        wid = ctx.workflow_id
        await rec.workflow_state(StateChange(wid, WorkflowState.RUNNING))
        try:
            options = defn.options
            run.budget.limits = resolve_limits(
                run.input, self.budget, usd=options.budget_usd, tokens=options.budget_tokens
            )
            await self._graph(run, rec)
            if bool(run.input.get("require_approval", defn.options.require_approval)):
                await self._approval(run, rec)
        except StepError as err:
            # Loggers made where used, not held across the run by each of thousands of runs.
            log = LazyLogger("ecl.workflows", workflow_id=wid, definition_id=definition_id)
            log.warning("workflow failed", error=err.message, step_id=err.step_id)
            result = WorkflowResult.of_run(
                run,
                workflow_id=wid,
                definition_id=defn.id,
                state=WorkflowState.FAILED,
                started=started,
                error=err.to_dict(),
            )
            await rec.workflow_state(
                StateChange(wid, WorkflowState.FAILED, error=result.error, revision_count=run.revisions)
            )
            return result
        result = WorkflowResult.of_run(
            run, workflow_id=wid, definition_id=defn.id, state=WorkflowState.COMPLETED, started=started
        )
        await rec.workflow_state(
            StateChange(wid, WorkflowState.COMPLETED, output=result.outputs, revision_count=run.revisions)
        )
        log = LazyLogger("ecl.workflows", workflow_id=wid, definition_id=definition_id)
        log.info("workflow completed", revisions=run.revisions, tokens=run.tokens.total, cost_usd=str(run.cost))
        return result

    # ------------------------------------------------------------------ the graph

    async def _graph(
        self,
        run: _Run,
        rec: WorkflowRecorder,
        subset: set[str] | None = None,
        iteration: int = 0,
    ) -> None:
        """Run the steps (all, or ``subset``) in dependency order, ready ones concurrently."""
        defn = run.defn
        whole = self._schedule(defn)
        plan = whole if subset is None else _Schedule.of(defn, subset, whole)
        deps, conditions = plan.deps, plan.conditions
        loop = defn.loops[0] if defn.loops else None
        for ready in plan.rounds:
            plain: list[str] = []
            validators: list[str] = []
            for step_id in ready:
                if deps[step_id] & run.skipped or not self._conditions_hold(run, step_id, conditions.get(step_id, [])):
                    run.skipped = run.skipped | {step_id}
                    continue
                (validators if loop is not None and step_id == loop.validator else plain).append(step_id)
            if len(plain) == 1:  # one step: awaited here, no coroutine around it held while it runs
                run.absorb(await self._step(run, rec, plain[0], iteration))
            else:
                await self._concurrently(run, rec, plain, iteration)
            for _ in validators:
                assert loop is not None
                await self._loop(run, rec, loop)
        if not plan.complete:
            raise DefinitionError(f"definition {defn.id}: no runnable step (cycle?)", definition_id=defn.id)

    def _schedule(self, defn: WorkflowDefinition) -> _Schedule:
        """The schedule of all of ``defn``'s steps, worked out once per loaded definition (a
        definition does not change once loaded; one loaded again replaces the one kept)."""
        found = self._schedules.get(defn.id)
        if found is not None and found[0] is defn:
            return found[1]
        plan = _Schedule.of(defn)
        self._schedules[defn.id] = (defn, plan)
        return plan

    async def _concurrently(self, run: _Run, rec: WorkflowRecorder, step_ids: list[str], iteration: int) -> None:
        if not step_ids:
            return
        # Every sibling finishes (its result or error is journaled either way), so a
        # replay meets the same journal; then the first failure in definition order wins.
        results = await asyncio.gather(
            *(self._step(run, rec, s, iteration) for s in step_ids),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, StepError):
                raise failure  # engine signals, cancellation, non-determinism: not a step failure
        if failures:
            raise failures[0]
        for result in results:
            assert isinstance(result, StepExecution)
            run.absorb(result)

    @staticmethod
    def _conditions_hold(run: _Run, step_id: str, conditions: list[str]) -> bool:
        if not conditions:
            return True
        scope = run.scope()
        for condition in conditions:
            try:
                holds = parse_expression(condition).evaluate(scope)
            except ExpressionError as exc:
                raise StepError(f"step {step_id}: {exc.message}", step_id=step_id) from None
            if not holds:
                return False
        return True

    async def _set(self, run: _Run, key: str, value: Any) -> None:
        await run.ctx.set(key, value)
        run.state[key] = value

    async def _loop(self, run: _Run, rec: WorkflowRecorder, loop: RevisionLoop) -> None:
        await self._set(run, STATE_DRAFT, self._resolve(loop.draft, run.scope()))
        verdict = await self._step(run, rec, loop.validator, 0)
        run.absorb(verdict)
        assert loop.max_iterations is not None  # validated at load
        await self._revise_until_pass(run, rec, loop, _feedback(verdict), first=1, last=loop.max_iterations)

    async def _revise_until_pass(
        self,
        run: _Run,
        rec: WorkflowRecorder,
        loop: RevisionLoop,
        feedback: str | None,
        *,
        first: int,
        last: int,
    ) -> None:
        """Revise with ``feedback`` and validate again, as iterations ``first..last``."""
        iteration = first
        while feedback is not None:
            if iteration > last:
                count = last - first + 1
                raise MaxRevisionsExceeded(
                    f"step {loop.validator} still asks for a revision after {count} revision(s) "
                    f"(max_iterations={loop.max_iterations})",
                    attempts=count,
                    step_id=loop.validator,
                )
            loop_scope = {"feedback": feedback, "iteration": iteration}
            revised = await self._step(run, rec, loop.reviser, iteration, loop_scope)
            run.absorb(revised)
            await self._set(run, STATE_DRAFT, revised.output[loop.revised_field])
            run.revisions = iteration
            await self._set(run, STATE_REVISIONS, iteration)
            await rec.workflow_state(StateChange(run.ctx.workflow_id, WorkflowState.RUNNING, revision_count=iteration))
            verdict = await self._step(run, rec, loop.validator, iteration, loop_scope)
            run.absorb(verdict)
            feedback = _feedback(verdict)
            iteration += 1

    async def _approval(self, run: _Run, rec: WorkflowRecorder) -> None:
        loop = run.defn.loops[0] if run.defn.loops else None
        wid = run.ctx.workflow_id
        rounds = (loop.max_iterations or 1) if loop is not None else 0
        round_ = 0
        while True:
            round_ += 1
            await rec.workflow_state(StateChange(wid, WorkflowState.WAITING_FOR_REVISION))
            answer = await run.ctx.promise(promise_name(APPROVAL_PROMISE, round_))
            await rec.workflow_state(StateChange(wid, WorkflowState.RUNNING))
            decision, feedback = _approval_answer(answer)
            if decision == "approve":
                return
            if loop is None:
                raise StepError(
                    f"definition {run.defn.id} has no revision loop, so a 'revise' cannot be carried out",
                    step_id="approval",
                )
            if round_ > rounds:
                raise MaxRevisionsExceeded(
                    f"approval asked for more than {rounds} revision round(s) (max_iterations={loop.max_iterations})",
                    attempts=rounds,
                    step_id="approval",
                )
            first = run.revisions + 1
            await self._revise_until_pass(run, rec, loop, feedback, first=first, last=first + rounds - 1)
            downstream = self._downstream(run, loop.validator)
            run.skipped -= downstream
            await self._graph(run, rec, subset=downstream, iteration=round_)

    @staticmethod
    def _downstream(run: _Run, step_id: str) -> set[str]:
        """Steps that (transitively) depend on ``step_id``, outside the loop."""
        deps = run.defn.dependencies()
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for s, ds in deps.items():
                if s not in found and s not in run.defn.loop_only and ds & ({step_id} | found):
                    found.add(s)
                    changed = True
        return found

    # ------------------------------------------------------------------ one step

    async def _step(
        self,
        run: _Run,
        rec: WorkflowRecorder,
        step_id: str,
        iteration: int,
        loop_scope: dict[str, Any] | None = None,
    ) -> StepExecution:
        spec = run.spec(step_id)
        step_input = self._input(run, spec, loop_scope)
        fresh: list[StepExecution] = []
        # Recorded (rows and result) under the definition's step id, whatever its implementation.
        execute = self.executor.journaled(
            spec.implementation,  # looked up when it runs (a replay needs no implementation)
            step_input,
            fresh,
            workflow_id=run.ctx.workflow_id,
            iteration=iteration,
            recorder=rec,
            timeout=spec.timeout,
            fallback=spec.fallback or run.defn.options.fallback or None,
            record_as=step_id,
        )
        raw = await run.budget.run(journal_name(step_id, iteration), step_id, execute)
        # Run just now: the object is at hand. Replayed: rebuilt from the journal.
        return fresh[-1] if fresh else StepExecution.model_validate(raw)

    def _input(self, run: _Run, spec: StepDefinition, loop_scope: dict[str, Any] | None) -> dict[str, Any]:
        """The step's input, resolved in the run's scope (made here, so a running step does
        not hold the scope across its awaits: thousands of concurrent runs each would)."""
        scope = run.scope(loop_scope)
        return {field: self._resolve(value, scope) for field, value in spec.input.items()}

    @staticmethod
    def _resolve(value: Any, scope: dict[str, Any]) -> Any:
        if is_reference(value):
            return resolve_reference(scope, str(value)[1:])
        if isinstance(value, dict):
            return {k: WorkflowOrchestrator._resolve(v, scope) for k, v in value.items()}
        if isinstance(value, list):
            return [WorkflowOrchestrator._resolve(v, scope) for v in value]
        return literal_value(value)


def _feedback(execution: StepExecution) -> str | None:
    """The validator's request for a revision: ``NeedsRevision`` feedback, or an output
    with ``decision: "revise"`` (its ``feedback`` field)."""
    if execution.feedback is not None:
        return execution.feedback
    if execution.output.get("decision") == "revise":
        return str(execution.output.get("feedback") or "Please revise the draft.")
    return None


def _approval_answer(answer: Any) -> tuple[str, str | None]:
    if not isinstance(answer, dict) or answer.get("decision") not in ("approve", "revise"):
        raise StepError(
            f"approval answer must be {{'decision': 'approve'|'revise', 'feedback': ...}}, got {answer!r}",
            step_id="approval",
        )
    feedback = answer.get("feedback")
    if answer["decision"] == "revise" and not feedback:
        feedback = "Please improve the draft."
    return str(answer["decision"]), str(feedback) if feedback else None
