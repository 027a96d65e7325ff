"""A small async circuit breaker for LLM providers.

Closed: calls pass; ``failure_threshold`` retryable failures within ``window`` seconds open
it. Open: calls fail at once with a retryable ``LlmError(kind="overloaded")`` for
``open_for`` seconds. Half-open: one trial call; success closes, failure re-opens.
Non-retryable errors (bad request, auth) say nothing about the provider's health and do
not count.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Literal

from ecl.core.errors import LlmError
from ecl.llm.provider import CompletionRequest, CompletionResponse, LlmProvider, StreamEvent

__all__ = ["BreakerProvider", "CircuitBreaker", "CircuitOpenError"]

State = Literal["closed", "open", "half_open"]


class CircuitOpenError(LlmError):
    """Raised without calling the provider while the circuit is open."""


class CircuitBreaker:
    """Failure counting and state; shared by every call through one provider."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        window: float = 60.0,
        open_for: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.window = window
        self.open_for = open_for
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._trial = asyncio.Lock()
        self.transitions: list[State] = []

    @property
    def state(self) -> State:
        """The current state."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.open_for:
            return "half_open"
        return "open"

    def _set_open(self) -> None:
        self._opened_at = self._clock()
        self.transitions.append("open")

    def before(self) -> None:
        """Raise while open."""
        if self.state == "open":
            remaining = self.open_for - (self._clock() - (self._opened_at or 0.0))
            raise CircuitOpenError(
                f"circuit open after repeated provider failures; retry in {remaining:.0f}s",
                kind="overloaded",
                retryable=True,
                retry_after=max(0.0, remaining),
            )

    def success(self) -> None:
        """Record a success (closes a half-open circuit)."""
        if self._opened_at is not None:
            self.transitions.append("closed")
        self._opened_at = None
        self._failures.clear()

    def failure(self, err: LlmError) -> None:
        """Record a failure; retryable ones count towards opening."""
        if not err.retryable:
            return
        now = self._clock()
        if self.state == "half_open":
            self._set_open()
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window:
            self._failures.popleft()
        if len(self._failures) >= self.failure_threshold and self._opened_at is None:
            self._set_open()


class BreakerProvider:
    """Wraps a provider with a circuit breaker."""

    def __init__(self, inner: LlmProvider, breaker: CircuitBreaker | None = None) -> None:
        self.inner = inner
        self.breaker = breaker or CircuitBreaker()
        self.name = inner.name
        self.model = inner.model

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Call through the breaker."""
        self.breaker.before()
        half_open = self.breaker.state == "half_open"
        if half_open:
            async with self.breaker._trial:
                return await self._call(request)
        return await self._call(request)

    async def _call(self, request: CompletionRequest) -> CompletionResponse:
        try:
            response = await self.inner.complete(request)
        except LlmError as err:
            self.breaker.failure(err)
            raise
        self.breaker.success()
        return response

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream through the breaker."""
        self.breaker.before()
        try:
            async for event in self.inner.stream(request):
                yield event
        except LlmError as err:
            self.breaker.failure(err)
            raise
        self.breaker.success()

    async def close(self) -> None:
        """Close the wrapped provider's HTTP client, if it has one."""
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            await closer()
