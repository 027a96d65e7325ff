"""Retry policy shared by steps, the LLM layer and both engines."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RetryPolicy"]


class RetryPolicy(BaseModel):
    """Exponential backoff: ``initial_delay * multiplier**n``, capped at ``max_delay``.

    ``max_attempts`` counts every attempt, the first included (1 means no retry).
    """

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=30)
    multiplier: float = Field(default=2.0, ge=1.0)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = self.initial_delay.total_seconds() * self.multiplier ** max(0, attempt - 1)
        return min(raw, self.max_delay.total_seconds())

    @classmethod
    def none(cls) -> RetryPolicy:
        """A single attempt."""
        return cls(max_attempts=1, initial_delay=timedelta(0), max_delay=timedelta(0))
