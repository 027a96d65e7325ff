"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ecl.core.metadata import TokenUsage
from ecl.core.rules import APPROVAL_PROMISE
from ecl.core.state import WorkflowState

__all__ = [
    "ArtifactOut",
    "DefinitionOut",
    "ErrorBody",
    "ErrorInfo",
    "FieldProblem",
    "Health",
    "LlmCallOut",
    "LlmCallsOut",
    "SignalIn",
    "StepOut",
    "SubmitIn",
    "ValidationDetails",
    "ValidationErrorBody",
    "ValidationErrorInfo",
    "WorkflowList",
    "WorkflowOut",
]


class SubmitIn(BaseModel):
    """``POST /workflows``."""

    model_config = ConfigDict(extra="forbid")

    definition_id: str = Field(min_length=1, max_length=128, examples=["critique-revise"])
    input: dict[str, Any] = Field(default_factory=dict, examples=[{"topic": "Benefits of Rust"}])
    workflow_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="Idempotency key: the same id and body return the same workflow.",
    )


class SignalIn(BaseModel):
    """``POST /workflows/{id}/signal``: resolve a durable promise (default: approval)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default=APPROVAL_PROMISE, min_length=1, max_length=200)
    decision: Literal["approve", "revise"] | None = None
    feedback: str | None = Field(default=None, max_length=10_000)
    payload: dict[str, Any] | None = Field(default=None, description="Raw payload (instead of decision)")


class WorkflowOut(BaseModel):
    """A workflow."""

    id: str
    definition_id: str
    state: WorkflowState
    input: Any
    output: Any = None
    error: Any = None
    waiting: dict[str, Any] | None = Field(
        default=None,
        description=(
            "What it waits for now, while it waits: reason rate_limit or breaker (model, why, seconds, until, "
            "step_id), "
            "slot (definition_id, limit: max_concurrent_workflows) or budget (the refused call: budget_usd, "
            "budget_tokens, spent_usd, spent_tokens, call, message); null otherwise."
        ),
    )
    revision_count: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    cost_usd: Decimal = Field(default=Decimal(0), description="What its LLM calls cost so far (USD, exact).")
    tokens: int = Field(default=0, description="The tokens its LLM calls used so far (input + output).")


class WorkflowList(BaseModel):
    """A page of workflows."""

    items: list[WorkflowOut]
    next_cursor: str | None = None


class StepOut(BaseModel):
    """One step attempt."""

    id: str
    step_id: str
    attempt: int
    iteration: int
    state: str
    input: Any = None
    output: Any = None
    error: Any = None
    started_at: datetime
    completed_at: datetime | None = None
    tokens_used: int | None = None
    cost_usd: Decimal = Field(default=Decimal(0), description="What this attempt's LLM calls cost (USD, exact).")


class LlmCallOut(BaseModel):
    """One LLM request."""

    id: str
    step_execution_id: str | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    latency_ms: float
    outcome: str
    error_kind: str | None
    created_at: datetime
    cost_usd: Decimal = Field(default=Decimal(0), description="The call's cost (USD, exact).")
    prompt: str | None = Field(
        default=None,
        description="What was asked, each message under its role; stored only with observability.capture_content "
        "(capped at observability.max_content_chars, secrets hidden), else null.",
    )
    reply: str | None = Field(
        default=None,
        description="What the model answered; stored only with observability.capture_content, else null.",
    )


class LlmCallsOut(BaseModel):
    """A workflow's LLM calls and their totals."""

    items: list[LlmCallOut]
    calls: int
    errors: int
    tokens: TokenUsage
    latency_ms: float
    cost_usd: Decimal = Field(default=Decimal(0), description="The calls' total cost (USD, exact).")


class ArtifactOut(BaseModel):
    """Artifact metadata."""

    id: str
    workflow_id: str
    step_id: str
    name: str
    content_type: str
    size: int
    sha256: str | None = None
    created_at: datetime


class DefinitionOut(BaseModel):
    """A workflow definition."""

    id: str
    name: str
    description: str
    steps: list[dict[str, Any]]
    transitions: list[dict[str, Any]]


class Health(BaseModel):
    """Health report."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
    breakers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="LLM circuit breakers by provider/model: state (closed, open, half_open), "
        "seconds until an open one tries again, recent failures.",
    )


class ErrorInfo(BaseModel):
    """What went wrong (docs/api/errors.md lists every code)."""

    code: str = Field(examples=["WORKFLOW_NOT_FOUND"])
    message: str = Field(description="One line naming the field or id and the value.")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


class FieldProblem(BaseModel):
    """One bad field of a request."""

    field: str = Field(description="Dotted path in the body (``input.topic``), or a query or path parameter.")
    message: str
    value: Any = Field(default=None, description="A printable form of the bad value, when it helps.")


class ValidationDetails(BaseModel):
    """The details of a 400."""

    errors: list[FieldProblem] = Field(default_factory=list)


class ValidationErrorInfo(BaseModel):
    """A request the server refuses to act on (``VALIDATION_ERROR`` and other 400 codes)."""

    code: str = Field(examples=["VALIDATION_ERROR"])
    message: str
    details: ValidationDetails = Field(default_factory=ValidationDetails)


class ValidationErrorBody(BaseModel):
    """The body of a 400 response."""

    error: ValidationErrorInfo
