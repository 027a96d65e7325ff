"""What running a step produced."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

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

    def journal(self) -> dict[str, Any]:
        """This execution as JSON: ``model_dump(mode="json")``, built directly (the journaled
        result of every step; what pydantic would make, a test pins it)."""
        meta = self.metadata
        tokens = meta.llm_tokens_used
        started = _iso(meta.started_at)
        completed = None if meta.completed_at is None else _iso(meta.completed_at)
        # The first trace is the step's start and the last its completion, at the same instants.
        at = {id(meta.started_at): started, id(meta.completed_at): completed}
        return {
            "step_id": self.step_id,
            "output": _json(self.output),
            "feedback": self.feedback,
            "metadata": {
                "step_id": meta.step_id,
                "started_at": started,
                "completed_at": completed,
                "attempt": meta.attempt,
                "llm_tokens_used": None
                if tokens is None
                else {
                    "input": tokens.input,
                    "output": tokens.output,
                    "cache_creation": tokens.cache_creation,
                    "cache_read": tokens.cache_read,
                },
                "llm_calls": meta.llm_calls,
                "cost_usd": _decimal(meta.cost_usd),
                "spent_tokens": meta.spent_tokens,
                "llm_models": list(meta.llm_models),
            },
            "traces": [
                {"kind": t.kind, "at": at.get(id(t.at)) or _iso(t.at), "attempt": t.attempt, "detail": _json(t.detail)}
                for t in self.traces
            ],
        }


def _iso(value: datetime) -> str:
    """A datetime as pydantic writes it in JSON (UTC as ``Z``)."""
    text = value.isoformat()
    return f"{text[:-6]}Z" if text.endswith("+00:00") else text


def _decimal(value: Decimal) -> str:
    """A ``Decimal`` as pydantic writes it in JSON: a finite one's ``str`` (what pydantic
    gives, without its serializer's call per step)."""
    if type(value) is Decimal and value.is_finite():
        return str(value)
    found: str = _DECIMAL.dump_python(value, mode="json")
    return found


def _json(value: dict[str, Any]) -> dict[str, Any]:
    """A ``dict[str, Any]`` field as pydantic writes it in JSON; a flat dict of plain values
    as it is (the common case: a step's output dumped in JSON mode, a trace's detail)."""
    for v in value.values():
        if type(v) not in _PLAIN:
            found: dict[str, Any] = _DICT.dump_python(value, mode="json")
            return found
    return dict(value)


_PLAIN = frozenset({str, int, bool, type(None)})
_DICT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
_DECIMAL: TypeAdapter[Decimal] = TypeAdapter(Decimal)
