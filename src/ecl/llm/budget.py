"""Budgets: the most a workflow may spend on LLM calls, in USD and/or tokens.

A budget is enforced before each call: a call whose worst case (its estimated input tokens,
all priced as cache writes, plus its whole ``max_tokens`` of output) would cross what is left
is not sent; :class:`~ecl.core.BudgetExceeded` says why. The running total a call is checked
against comes from the journal (each step's journaled result carries what its calls cost),
so a resume, a retry or a Restate replay sees the same spend. What happens on a refusal
(fail, or wait for ``ecl signal ID budget --add-usd N``) is the workflow run's business
(:mod:`ecl.workflows.budget`, for both workflow forms).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from ecl.core.errors import BudgetExceeded, InputValidationError
from ecl.llm.prices import Price, estimate_input_tokens
from ecl.llm.provider import CompletionRequest

__all__ = ["BudgetGuard", "BudgetLimits", "BudgetPolicy", "parse_amount", "parse_budget", "parse_top_up"]


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """Configured defaults (``budget.*``): limits of a workflow that sets none, and what a
    refusal does."""

    usd: Decimal | None = None
    tokens: int | None = None
    on_exceeded: Literal["fail", "wait"] = "wait"


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """One workflow's limits (``None``: unlimited)."""

    usd: Decimal | None = None
    tokens: int | None = None

    @property
    def unlimited(self) -> bool:
        """No limit at all."""
        return self.usd is None and self.tokens is None

    def raised(self, usd: Decimal, tokens: int) -> BudgetLimits:
        """The limits after a top-up (a top-up of an unlimited dimension changes nothing)."""
        return BudgetLimits(
            usd=None if self.usd is None else self.usd + usd,
            tokens=None if self.tokens is None else self.tokens + tokens,
        )


def parse_amount(value: Any, *, field: str) -> Decimal:
    """A non-negative USD amount (number or decimal string), or an :class:`InputValidationError`."""
    try:
        if isinstance(value, bool) or value is None:
            raise InvalidOperation
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InputValidationError(
            f"{field} = {value!r}: not a number of USD",
            errors=[{"field": field, "message": "not a number", "value": str(value)[:100]}],
        ) from None
    if not amount.is_finite() or amount < 0:
        raise InputValidationError(
            f"{field} = {value!r}: must be a number >= 0",
            errors=[{"field": field, "message": "must be >= 0", "value": str(value)[:100]}],
        )
    return amount


def _tokens(value: Any, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputValidationError(
            f"{field} = {value!r}: not a whole number of tokens",
            errors=[{"field": field, "message": "not an integer", "value": str(value)[:100]}],
        )
    try:
        count = int(value)
    except ValueError:
        raise InputValidationError(
            f"{field} = {value!r}: not a whole number of tokens",
            errors=[{"field": field, "message": "not an integer", "value": str(value)[:100]}],
        ) from None
    if count < 0:
        raise InputValidationError(
            f"{field} = {value!r}: must be >= 0",
            errors=[{"field": field, "message": "must be >= 0", "value": str(value)[:100]}],
        )
    return count


def parse_budget(data: Mapping[str, Any]) -> tuple[Decimal | None, int | None]:
    """``budget_usd`` and ``budget_tokens`` of a workflow input (absent: ``None``)."""
    usd = data.get("budget_usd")
    tokens = data.get("budget_tokens")
    return (
        None if usd is None else parse_amount(usd, field="budget_usd"),
        None if tokens is None else _tokens(tokens, field="budget_tokens"),
    )


def parse_top_up(payload: Any) -> tuple[Decimal, int]:
    """``{"add_usd": ..., "add_tokens": ...}`` (the ``budget`` promise's payload)."""
    if not isinstance(payload, Mapping) or not ({"add_usd", "add_tokens"} & set(payload)):
        raise InputValidationError(
            f"a budget top-up must be {{'add_usd': N, 'add_tokens': N}}, got {payload!r}"[:300],
            errors=[{"field": "payload", "message": "expected add_usd and/or add_tokens"}],
        )
    usd = payload.get("add_usd")
    tokens = payload.get("add_tokens")
    return (
        Decimal(0) if usd is None else parse_amount(usd, field="add_usd"),
        0 if tokens is None else _tokens(tokens, field="add_tokens"),
    )


class BudgetGuard:
    """A workflow's spend against its limits, while one step runs (all its attempts).

    ``spent_usd``/``spent_tokens`` count from the values given (what this guard's calls add);
    a call let through holds its worst case (:attr:`held`) until it is counted. ``elsewhere``,
    when given, tells what the rest of the run has spent or holds meanwhile (the journaled
    steps and the steps running concurrently), so that concurrent calls cannot together cross
    the budget.
    """

    def __init__(
        self,
        limits: BudgetLimits,
        *,
        spent_usd: Decimal = Decimal(0),
        spent_tokens: int = 0,
        elsewhere: Callable[[], tuple[Decimal, int]] | None = None,
    ) -> None:
        self.limits = limits
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self._elsewhere = elsewhere
        self._holds: list[tuple[Decimal, int]] = []
        self.refusal: BudgetExceeded | None = None
        """The last refusal (kept so that a step that swallows the error cannot hide it)."""

    def check(self, request: CompletionRequest, model: str, price: Price | None) -> None:
        """Raise :class:`BudgetExceeded` if the call's worst case would cross a limit."""
        if self.limits.unlimited:
            return
        other_usd, other_tokens = self._elsewhere() if self._elsewhere is not None else (Decimal(0), 0)
        held_usd, held_tokens = self.held
        spent_usd = self.spent_usd + held_usd + other_usd
        spent_tokens = self.spent_tokens + held_tokens + other_tokens
        input_tokens = estimate_input_tokens(request)
        worst_tokens = input_tokens + request.max_tokens
        worst_usd = price.worst_case(input_tokens, request.max_tokens) if price is not None else Decimal(0)
        over_usd = self.limits.usd is not None and spent_usd + worst_usd > self.limits.usd
        over_tokens = self.limits.tokens is not None and spent_tokens + worst_tokens > self.limits.tokens
        if not (over_usd or over_tokens):
            self._holds.append((worst_usd, worst_tokens))
            return
        if over_usd:
            what = (
                f"worst case ${worst_usd.normalize():f}, would cross the budget of ${self.limits.usd} "
                f"(spent ${spent_usd})"
            )
        else:
            what = (
                f"worst case {worst_tokens} tokens, would cross the budget of {self.limits.tokens} tokens "
                f"(spent {spent_tokens})"
            )
        self.refusal = BudgetExceeded(
            f"LLM call not sent: {model}, ~{input_tokens} input + {request.max_tokens} max output tokens, {what}",
            budget_usd=None if self.limits.usd is None else str(self.limits.usd),
            budget_tokens=self.limits.tokens,
            spent_usd=str(spent_usd),
            spent_tokens=spent_tokens,
            call={
                "model": model,
                "estimated_input_tokens": input_tokens,
                "max_tokens": request.max_tokens,
                "worst_case_usd": str(worst_usd),
                "worst_case_tokens": worst_tokens,
            },
        )
        raise self.refusal

    @property
    def held(self) -> tuple[Decimal, int]:
        """The worst cases of the calls let through and not counted yet (USD, tokens)."""
        return sum((h[0] for h in self._holds), Decimal(0)), sum(h[1] for h in self._holds)

    def add(self, cost: Decimal, tokens: int) -> None:
        """Count a call that was made (it no longer holds its worst case)."""
        if self._holds:
            self._holds.pop(0)
        self.spent_usd += cost
        self.spent_tokens += tokens
