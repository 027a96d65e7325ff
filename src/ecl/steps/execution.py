"""What running a step produced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ecl.core.metadata import StepMetadata

__all__ = ["StepExecution", "TraceEvent"]

TraceKind = Literal["started", "attempt_failed", "validation_failed", "retry", "completed", "failed"]


class TraceEvent(BaseModel):
    """One thing that happened while a step ran."""

    kind: TraceKind
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    attempt: int = 1
    detail: dict[str, Any] = Field(default_factory=dict)


class StepExecution(BaseModel):
    """A successful step run: output, optional revision feedback, metadata, trace."""

    step_id: str
    output: dict[str, Any]
    feedback: str | None = None
    """Set when the step asked for a revision (``NeedsRevision``)."""
    metadata: StepMetadata
    traces: list[TraceEvent] = Field(default_factory=list)
