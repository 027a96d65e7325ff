"""What a run records: step attempts, LLM calls and workflow state changes.

The recorders (:class:`ecl.steps.StepRecorder`, :class:`ecl.workflows.WorkflowRecorder` and
their implementations on SQL, on the embedded engine's writer and on Restate) speak in these values, so a field is
added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ecl.core.metadata import TokenUsage
from ecl.core.state import WorkflowState

__all__ = ["INTERRUPTED", "INTERRUPTED_STEP_ERROR", "PENDING", "LlmCall", "StateChange", "StepFinished", "StepStarted"]


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A step attempt began."""

    workflow_id: str
    step_id: str
    attempt: int
    iteration: int = 0
    input: Any = None


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step attempt ended: ``completed`` or ``failed``."""

    state: str
    output: Any = None
    error: Any = None
    tokens: TokenUsage | int | None = None

    @property
    def total_tokens(self) -> int | None:
        """Tokens as one number (``None`` when unknown)."""
        return self.tokens.total if isinstance(self.tokens, TokenUsage) else self.tokens


PENDING = "pending"
"""``llm_calls.outcome`` of a request sent and not answered yet: recorded before it is sent,
because a provider bills a request whether or not the process lives to see the answer."""

INTERRUPTED = "interrupted"
"""``llm_calls.outcome`` of a request whose process died before the answer (found orphaned
when the workflow is recovered; its tokens are unknown)."""


INTERRUPTED_STEP_ERROR: dict[str, Any] = {"type": "Interrupted", "message": "the process running this step stopped"}
"""The ``error`` of a step attempt found ``running`` after its process died (state ``interrupted``)."""


@dataclass(frozen=True, slots=True)
class LlmCall:
    """One request to an LLM provider: ``ok``, ``error``, ``pending`` or ``interrupted``."""

    workflow_id: str
    execution_id: str | None
    provider: str
    model: str
    usage: TokenUsage
    latency_ms: float
    outcome: str
    error_kind: str | None = None
    cost_usd: Decimal = Decimal(0)
    """The exact cost of the call (USD, from the price table)."""
    call_id: str = ""
    """The row's id, chosen when the request is sent (``pending``) and kept when it settles."""
    prompt: str | None = None
    """What was asked (``observability.capture_content`` only: capped and redacted)."""
    reply: str | None = None
    """What the model answered (``observability.capture_content`` only: capped and redacted)."""

    def row(self, id: str, created_at: datetime) -> dict[str, Any]:
        """The ``llm_calls`` row of this call."""
        return {
            "id": id,
            "workflow_id": self.workflow_id,
            "step_execution_id": self.execution_id,
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.usage.input,
            "output_tokens": self.usage.output,
            "cache_creation_tokens": self.usage.cache_creation,
            "cache_read_tokens": self.usage.cache_read,
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "error_kind": self.error_kind,
            "created_at": created_at,
            "cost_usd": self.cost_usd,
            "prompt": self.prompt,
            "reply": self.reply,
        }


@dataclass(frozen=True, slots=True)
class StateChange:
    """A workflow moved to ``state``; the other fields are set when they changed."""

    workflow_id: str
    state: WorkflowState
    output: Any = None
    error: Any = None
    revision_count: int | None = None
