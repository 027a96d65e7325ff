"""The budget of one workflow run, for both workflow forms (graph and code-first).

Limits: ``input.budget_usd`` / ``input.budget_tokens``, else the workflow's own (a graph's
``options``, a code-first workflow's ``@ecl.workflow(budget_usd=..., budget_tokens=...)``),
else the configured :class:`~ecl.llm.budget.BudgetPolicy` (:func:`resolve_limits`).

Every step runs through :meth:`RunBudget.run`: one ``ctx.run`` under the step's journal
name, with a :class:`~ecl.llm.budget.BudgetGuard` that refuses (does not send) a call whose
worst case would cross the budget. The spend the guard checks against is the journaled
steps' (each step's journaled result carries what its calls cost, so a resume, a retry or a
replay sees the same total) plus what the steps running concurrently have spent so far. A
refusal is journaled as the step's result, with what the step had spent before it
(``{"budget_refused": error, "cost_usd": ..., "spent_tokens": ..., "round": n}``). Then the
run fails with :class:`~ecl.core.BudgetExceeded` (``on_exceeded = "fail"``), or it waits in
state ``waiting_for_budget`` on the promise ``budget`` (round 1; then ``budget#2``...;
payload ``{"add_usd": N, "add_tokens": N}``) and runs the step again as
``<journal name>#budget<round>``. Promise and journal names are persisted: never change them.

Concurrent refusals share a round: a step refused while a round is open (claimed and not
yet topped up) waits on that round, so one ``ecl signal ID budget`` resumes them all; the
round a refusal waits on is journaled with it. With a budget in wait mode, the results of
concurrent steps are taken up in the order the steps were called (a step that finished early
waits for the ones called before it), so the durable operations that follow (the budget
promise, a step run again) come in the same order on every run and replay.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import structlog

from ecl.core.durable import DurableContext, JsonValue
from ecl.core.errors import BudgetExceeded, EclError, StepError, error_from_dict
from ecl.core.records import StateChange
from ecl.core.rules import promise_name
from ecl.core.state import WorkflowState
from ecl.llm.budget import BudgetGuard, BudgetLimits, BudgetPolicy, parse_budget, parse_top_up
from ecl.workflows.recorder import WorkflowRecorder

__all__ = ["BUDGET_FIELDS", "BUDGET_PROMISE", "RunBudget", "budget_journal_name", "resolve_limits"]

_log = structlog.get_logger("ecl.workflows")

BUDGET_PROMISE = "budget"
"""The promise a run over budget waits on (round 1; later rounds: :func:`~ecl.core.rules.promise_name`)."""
BUDGET_FIELDS = ("budget_usd", "budget_tokens")
"""The input fields every workflow accepts for its budget."""

Execute = Callable[[BudgetGuard | None], Awaitable[dict[str, Any]]]
"""Runs the step with the guard (``None``: unlimited) and returns its journaled result
(a :class:`~ecl.steps.StepExecution` as JSON)."""


def budget_journal_name(name: str, round_: int) -> str:
    """The journal name of a step run again after budget top-up ``round_`` (persisted)."""
    return f"{name}#budget{round_}"


def resolve_limits(
    data: Mapping[str, Any], policy: BudgetPolicy, *, usd: Decimal | None = None, tokens: int | None = None
) -> BudgetLimits:
    """A run's limits: the input's, else the workflow's own (``usd``/``tokens``), else the policy's.

    A bad budget in the input is a :class:`~ecl.core.StepError` of step ``budget`` naming it.
    """
    try:
        in_usd, in_tokens = parse_budget(data)
    except EclError as err:
        raise StepError(f"input: {err.message}", step_id="budget") from None
    return BudgetLimits(
        usd=in_usd if in_usd is not None else (usd if usd is not None else policy.usd),
        tokens=in_tokens if in_tokens is not None else (tokens if tokens is not None else policy.tokens),
    )


class _Round:
    """One top-up round: the steps refused while it was open wait for it."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.error: StepError | None = None


class RunBudget:
    """The spend, limits and top-up rounds of one run (rebuilt identically on replay)."""

    def __init__(
        self,
        ctx: DurableContext,
        recorder: WorkflowRecorder,
        policy: BudgetPolicy | None = None,
        limits: BudgetLimits | None = None,
    ) -> None:
        self.ctx = ctx
        self.recorder = recorder
        self.policy = policy or BudgetPolicy()
        self.limits = limits or BudgetLimits()
        self.spent_usd = Decimal(0)
        """What the journaled steps cost (USD, exact): the run's cost."""
        self.spent_tokens = 0
        """Every token of the journaled steps' calls."""
        self.rounds = 0
        """Top-up rounds waited on so far."""
        self._claimed = 0  # rounds some refusal waits on (opened or about to be)
        self._resolved = 0  # rounds topped up
        self._rounds: dict[int, _Round] = {}
        self._live: list[BudgetGuard] = []  # guards of steps whose spend is not counted yet
        self._tail: asyncio.Future[None] | None = None  # the latest call's turn (wait mode)

    def _elsewhere(self, guard: BudgetGuard) -> tuple[Decimal, int]:
        usd, tokens = self.spent_usd, self.spent_tokens
        for other in self._live:
            if other is not guard:
                held_usd, held_tokens = other.held
                usd += other.spent_usd + held_usd
                tokens += other.spent_tokens + held_tokens
        return usd, tokens

    def _count(self, usd: Any, tokens: Any) -> None:
        if usd != "0":  # (what a step without LLM calls spent: nothing to add)
            self.spent_usd += Decimal(str(usd))
        self.spent_tokens += int(tokens)

    def _turn(self) -> tuple[asyncio.Future[None] | None, asyncio.Future[None] | None]:
        """``(before, mine)``: the previous call's turn to wait for, and this call's to settle."""
        if self.limits.unlimited or self.policy.on_exceeded != "wait":
            return None, None
        before, mine = self._tail, asyncio.get_running_loop().create_future()
        self._tail = mine
        return before, mine

    def _guard(self) -> BudgetGuard:
        """A guard for one step run, live (seen by the others') until its spend is counted."""
        holder: list[BudgetGuard] = []
        guard = BudgetGuard(self.limits, elsewhere=lambda: self._elsewhere(holder[0]))
        holder.append(guard)
        self._live.append(guard)
        return guard

    async def _execute(self, step_id: str, execute: Execute, made: list[BudgetGuard]) -> JsonValue:
        """The step run that is journaled: its result, or its refusal."""
        guard = None
        if not self.limits.unlimited:
            guard = self._guard()
            made.append(guard)
        try:
            result: JsonValue = await execute(guard)
            return result
        except BudgetExceeded as refusal:
            assert guard is not None
            refusal.step_id = step_id
            # What the step spent before the refusal is journaled with it: the spend replays
            # exactly and the step, run again after a top-up, is not charged twice.
            return {
                "budget_refused": refusal.to_dict(),
                "cost_usd": str(guard.spent_usd),
                "spent_tokens": guard.spent_tokens,
                "round": self._claim(),
            }

    async def run(self, name: str, step_id: str, execute: Execute) -> dict[str, Any]:
        """Run one step as ``ctx.run(name)`` within the budget; its journaled result (the
        :class:`~ecl.steps.StepExecution` as JSON), after as many top-ups as it takes.

        Raises :class:`~ecl.core.BudgetExceeded` (fail mode) or a :class:`~ecl.core.StepError`
        of step ``budget`` (a bad top-up).
        """
        base = name
        while True:
            before, mine = self._turn()
            try:
                if self.limits.unlimited:  # no guard and no turn to wait for: straight to the journal
                    raw = await self.ctx.run(name, functools.partial(execute, None))
                else:
                    made: list[BudgetGuard] = []
                    journaled = functools.partial(self._execute, step_id, execute, made)
                    raw = await self._in_turn(name, journaled, before, made)
                assert isinstance(raw, dict)
                if "budget_refused" not in raw:
                    meta = raw.get("metadata") or {}
                    self._count(meta.get("cost_usd", 0), meta.get("spent_tokens", 0))
                    return raw
                self._count(raw["cost_usd"], raw["spent_tokens"])
                refusal = error_from_dict(raw["budget_refused"])
                assert isinstance(refusal, BudgetExceeded)
                if self.policy.on_exceeded == "fail":
                    raise refusal
                round_ = int(raw.get("round") or self._claimed + 1)
                self._claimed = max(self._claimed, round_)
                await self._wait(round_, refusal, mine)
            finally:
                if mine is not None and not mine.done():
                    mine.set_result(None)
            name = budget_journal_name(base, round_)

    async def _in_turn(
        self,
        name: str,
        journaled: Callable[[], Awaitable[JsonValue]],
        before: asyncio.Future[None] | None,
        made: list[BudgetGuard],
    ) -> JsonValue:
        """``ctx.run(name)``, its result taken up once the previous call's is (wait mode)."""
        try:
            try:
                raw = await self.ctx.run(name, journaled)
            except Exception:
                if before is not None:  # a step failure too is taken up in call order
                    await before
                raise  # (cancellation and engine signals go at once)
            if before is not None:
                await before
            return raw
        finally:
            for guard in made:  # its spend is counted from the journaled result now
                self._live.remove(guard)

    def _claim(self) -> int:
        """The round a refusal made now waits on: the open one, or a new one."""
        if self._claimed <= self._resolved:
            self._claimed += 1
        return self._claimed

    async def _wait(self, round_: int, refusal: BudgetExceeded, mine: asyncio.Future[None] | None) -> None:
        """Wait for top-up round ``round_``: open it (the first refusal of the round) or join it."""
        found = self._rounds.get(round_)
        if found is not None:
            if mine is not None:
                mine.set_result(None)
            await found.done.wait()
            if found.error is not None:
                raise found.error
            return
        waiting = self._rounds[round_] = _Round()
        wid = self.ctx.workflow_id
        # Steps started together with this one take their journal positions first, on a
        # replay too (where their results come back at once): the promise comes after them.
        await asyncio.sleep(0)
        self.rounds = max(self.rounds, round_)
        _log.info("workflow waits for budget", workflow_id=wid, error=refusal.message, round=round_)
        await self.recorder.workflow_state(StateChange(wid, WorkflowState.WAITING_FOR_BUDGET, error=refusal.to_dict()))
        if mine is not None:
            mine.set_result(None)  # the promise below takes its journal position before the next call's turn
        try:
            answer = await self.ctx.promise(promise_name(BUDGET_PROMISE, round_))
            try:
                add_usd, add_tokens = parse_top_up(answer)
            except EclError as err:
                waiting.error = StepError(f"budget top-up: {err.message}", step_id="budget")
                raise waiting.error from None
            self.limits = self.limits.raised(add_usd, add_tokens)
            self._resolved = max(self._resolved, round_)
            await self.recorder.workflow_state(StateChange(wid, WorkflowState.RUNNING))
        finally:
            waiting.done.set()
