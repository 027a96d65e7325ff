"""Step results and workflow results."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

from ecl.core.errors import StepError, error_from_dict
from ecl.core.metadata import StepMetadata, TokenUsage, share_fields_set
from ecl.core.state import WorkflowState

__all__ = [
    "Failed",
    "NeedsRevision",
    "RunTotals",
    "StepResult",
    "Success",
    "WorkflowResult",
    "step_result_from_dict",
    "step_result_to_dict",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Success(Generic[T]):
    """The step produced its output."""

    output: T
    kind: Literal["success"] = "success"


@dataclass(frozen=True)
class NeedsRevision(Generic[T]):
    """The step produced an output that an earlier step should revise, with feedback."""

    output: T
    feedback: str
    kind: Literal["needs_revision"] = "needs_revision"


@dataclass(frozen=True)
class Failed:
    """The step failed; ``retryable`` says whether another attempt may succeed."""

    error: StepError
    retryable: bool
    kind: Literal["failed"] = "failed"


StepResult = Success[T] | NeedsRevision[T] | Failed
"""What :meth:`Step.execute` returns."""


def step_result_to_dict(result: StepResult[Any]) -> dict[str, Any]:
    """JSON form of a step result (outputs must themselves be JSON-compatible)."""
    if isinstance(result, Success):
        return {"kind": "success", "output": result.output}
    if isinstance(result, NeedsRevision):
        return {"kind": "needs_revision", "output": result.output, "feedback": result.feedback}
    return {"kind": "failed", "error": result.error.to_dict(), "retryable": result.retryable}


def step_result_from_dict(data: dict[str, Any]) -> StepResult[Any]:
    """Inverse of :func:`step_result_to_dict`."""
    kind = data["kind"]
    if kind == "success":
        return Success(data["output"])
    if kind == "needs_revision":
        return NeedsRevision(data["output"], str(data["feedback"]))
    if kind == "failed":
        error = error_from_dict(data["error"])
        if not isinstance(error, StepError):
            error = StepError(error.message)
        return Failed(error, bool(data["retryable"]))
    raise ValueError(f"unknown step result kind {kind!r}")


class RunTotals(Protocol):
    """What a run's steps have added up to so far (a graph run's or a code-first run's)."""

    outputs: dict[str, Any]
    steps: list[StepMetadata]
    revisions: int
    tokens: TokenUsage

    @property
    def cost(self) -> Decimal:
        """What the run's LLM calls cost so far (USD)."""
        ...


class WorkflowResult(BaseModel):
    """The outcome of one workflow run: every step's output and metadata."""

    workflow_id: str
    definition_id: str
    state: WorkflowState
    outputs: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    """The workflow's own result: a code-first workflow's return value as JSON (``None`` for a
    graph definition, whose result is its steps' ``outputs``)."""
    steps: list[StepMetadata] = Field(default_factory=list)
    revisions: int = 0
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: Decimal = Decimal(0)
    """The journaled spend of the run (USD): the sum of its steps' ``cost_usd``."""
    error: dict[str, Any] | None = None
    duration_ms: float | None = None

    @classmethod
    def of_run(
        cls,
        totals: RunTotals,
        *,
        workflow_id: str,
        definition_id: str,
        state: WorkflowState,
        started: float,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> WorkflowResult:
        """The result of a run that ended now, from its ``totals``; ``started`` is the
        :func:`time.perf_counter` reading of its start."""
        # Every field given: one set of field names shared by the results (see share_fields_set).
        result = cls(
            workflow_id=workflow_id,
            definition_id=definition_id,
            state=state,
            outputs=totals.outputs,
            output=output,
            steps=totals.steps,
            revisions=totals.revisions,
            tokens=totals.tokens,
            cost_usd=totals.cost,
            error=error,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        return share_fields_set(result)
