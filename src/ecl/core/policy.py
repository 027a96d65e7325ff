"""Retry policy shared by steps, the LLM layer and both engines, and who retries what.

One retry budget per call: an LLM request is retried only by the LLM layer
(``llm.retry``, :class:`ecl.llm.RetryingProvider`, which waits at least as long as a
``retry-after`` asks). An :class:`~ecl.core.errors.LlmError` that reaches a step has spent
that budget (or the server asked for a longer wait than ECL gives), so a step-level retry
(a step's ``retry_policy``, ``ctx.run(..., retry=...)``) never sends it again: a provider
that always fails gets ``llm.retry.max_attempts`` requests per call, not that number times
the step's attempts, and a step never re-sends sooner than the server's ``retry-after``.
Step-level retries are for the step's own failures (an output that fails validation, I/O).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from ecl.core.errors import LlmError, StepError

__all__ = ["RetryPolicy", "step_may_retry"]


def step_may_retry(error: StepError) -> bool:
    """Whether a step-level retry may run the work again after ``error`` (see the module doc)."""
    return error.retryable and not isinstance(error, LlmError)


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
