"""Retrying provider: exponential backoff that honours ``retry-after``.

Retries rate limits (429), overload (529), 5xx, timeouts and dropped connections; never
bad requests or auth failures (400, 401, 403, 404). The SDKs' own retries are off, and this
is the one retry budget of an LLM call (steps never retry an ``LlmError``:
:mod:`ecl.core.policy`), so the number of HTTP requests per ``complete`` call is at most
``policy.max_attempts`` (``llm.retry.max_attempts``), whatever the step's retry policy. A
wait is never shorter than the server's ``retry-after``; a server asking for more than
:data:`MAX_RETRY_AFTER` seconds gets no retry and the error says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from ecl.core.errors import LlmError
from ecl.core.policy import RetryPolicy
from ecl.llm.breaker import CircuitOpenError
from ecl.llm.provider import CompletionRequest, CompletionResponse, LlmProvider, StreamEvent

__all__ = ["RetryingProvider"]

_log = structlog.get_logger("ecl.llm.retry")

MAX_RETRY_AFTER = 60.0
"""A server asking for a longer wait is not waited for: the error goes up instead."""


class RetryingProvider:
    """Wraps a provider with ECL's retry policy."""

    def __init__(
        self,
        inner: LlmProvider,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wait_for_circuit: bool = True,
    ) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.wait_for_circuit = wait_for_circuit
        """``False``: an open circuit ends the call at once (a fallback model takes over)."""
        self._sleep = sleep
        self.name = inner.name
        self.model = inner.model

    def _wait(self, err: LlmError, attempt: int) -> float | None:
        if not err.retryable or attempt >= self.policy.max_attempts:
            return None
        if not self.wait_for_circuit and isinstance(err, CircuitOpenError):
            return None
        wait = self.policy.delay(attempt)
        if err.retry_after is not None:
            if err.retry_after > MAX_RETRY_AFTER:
                return None
            wait = max(wait, err.retry_after)
        return wait

    def _give_up(self, err: LlmError, attempt: int) -> None:
        """Say in the error's message how many requests were sent and why no more will be."""
        err.attempts = attempt
        if not err.retryable:
            return
        if not self.wait_for_circuit and isinstance(err, CircuitOpenError) and attempt < self.policy.max_attempts:
            why = "the circuit is open and a fallback model takes over"
        elif err.retry_after is not None and err.retry_after > MAX_RETRY_AFTER and attempt < self.policy.max_attempts:
            why = f"the server asked to wait {err.retry_after:g} s, more than the {MAX_RETRY_AFTER:g} s ECL waits"
        else:
            why = f"llm.retry.max_attempts={self.policy.max_attempts}"
        err.message = f"{err.message} (gave up after {attempt} request{'s' if attempt > 1 else ''}: {why})"
        err.args = (err.message,)

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Call the inner provider, retrying retryable failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self.inner.complete(request)
            except LlmError as err:
                wait = self._wait(err, attempt)
                if wait is None:
                    self._give_up(err, attempt)
                    raise
                err.attempts = attempt
                _log.warning(
                    "llm call failed; retrying",
                    kind=err.kind,
                    status=err.status_code,
                    request=attempt,  # ``attempt`` is the step's (bound by the executor)
                    wait_s=round(wait, 3),
                )
                await self._sleep(wait)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream, retrying only failures that happen before the first text arrives."""
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async for event in self.inner.stream(request):
                    started = True
                    yield event
                return
            except LlmError as err:
                if started:  # text already went out: another request would repeat it
                    err.attempts = attempt
                    raise
                wait = self._wait(err, attempt)
                if wait is None:
                    self._give_up(err, attempt)
                    raise
                err.attempts = attempt
                await self._sleep(wait)

    async def close(self) -> None:
        """Close the wrapped provider's HTTP client, if it has one."""
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            await closer()
