"""A small async circuit breaker for LLM providers, one per provider and model.

Closed: calls pass; ``failure_threshold`` retryable failures within ``window`` seconds open
it. Open: no call reaches the provider for ``open_for`` seconds. Half-open: exactly one trial
call goes through; the others are refused at once (not queued behind it); the trial's
success closes the circuit, its retryable failure opens it again. Non-retryable errors (bad
request, auth) say nothing about the provider's health: they neither count nor re-open (the
provider answered, so a half-open trial that gets one closes the circuit).

A refused call is a retryable :class:`CircuitOpenError` whose ``retry_after`` is the open
time left. :class:`BreakerProvider` waits that long and tries again (up to ``max_wait``
seconds in all), so a workflow that meets an open circuit waits for the provider instead of
failing for good.

Every transition is logged (``ecl.llm.breaker``) and counted in the metrics; the state of
every breaker is readable from :class:`BreakerBoard` (``/health/ready`` shows it).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import structlog

from ecl.core.errors import LlmError
from ecl.core.waiting import CIRCUIT_OPEN
from ecl.llm.provider import CompletionRequest, CompletionResponse, LlmProvider, StreamEvent
from ecl.llm.ratelimit import on_wait
from ecl.observability import metrics

__all__ = ["BreakerBoard", "BreakerProvider", "CircuitBreaker", "CircuitOpenError"]

State = Literal["closed", "open", "half_open"]

_log = structlog.get_logger("ecl.llm.breaker")

FAILURE_THRESHOLD = 5
"""Retryable failures within :data:`WINDOW` that open a circuit (by default)."""

WINDOW = 60.0
"""Seconds over which failures are counted (by default)."""

OPEN_FOR = 30.0
"""Seconds a circuit stays open before its half-open trial (by default)."""

HALF_OPEN_RETRY = 1.0
"""Seconds a call refused in half-open (the trial is in flight) waits before it asks again."""


class CircuitOpenError(LlmError):
    """Raised without calling the provider while the circuit is open (or half-open with its
    one trial call in flight)."""


class CircuitBreaker:
    """Failure counting and state of one provider and model."""

    def __init__(
        self,
        *,
        failure_threshold: int = FAILURE_THRESHOLD,
        window: float = WINDOW,
        open_for: float = OPEN_FOR,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        on_transition: Callable[[CircuitBreaker, State], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.window = window
        self.open_for = open_for
        self.name = name
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self._on_transition = on_transition
        self._reported: State = "closed"
        self.transitions: list[State] = []

    @property
    def state(self) -> State:
        """The current state."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.open_for:
            return "half_open"
        return "open"

    @property
    def remaining(self) -> float:
        """Seconds until an open circuit turns half-open (0 unless open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.open_for - (self._clock() - self._opened_at))

    def _moved(self, state: State) -> None:
        if state == self._reported:
            return
        self._reported = state
        self.transitions.append(state)
        if self._on_transition is not None:
            self._on_transition(self, state)

    def _set_open(self) -> None:
        self._opened_at = self._clock()
        self._trial_in_flight = False
        self._reported = "half_open" if self._reported == "open" else self._reported
        self._moved("open")

    @property
    def _label(self) -> str:
        return f"circuit {self.name}" if self.name else "circuit"

    def _refuse(self, message: str, wait: float) -> CircuitOpenError:
        return CircuitOpenError(message, kind="overloaded", retryable=True, retry_after=wait)

    def acquire(self) -> bool:
        """Permission for one call; ``True`` when it is the half-open trial. Raises
        :class:`CircuitOpenError` while open, and in half-open while the trial is in flight."""
        state = self.state
        if state == "open":
            remaining = self.remaining
            raise self._refuse(
                f"{self._label} open after repeated provider failures; retry in {remaining:.0f}s", remaining
            )
        if state == "half_open":
            self._moved("half_open")
            if self._trial_in_flight:
                raise self._refuse(f"{self._label} half-open: its one trial call is in flight", HALF_OPEN_RETRY)
            self._trial_in_flight = True
            return True
        return False

    def before(self) -> None:
        """Raise while open (kept for callers that only need the check)."""
        if self.state == "open":
            self.acquire()

    def success(self, trial: bool = False) -> None:
        """Record a success (closes a half-open circuit)."""
        if trial:
            self._trial_in_flight = False
        if self._opened_at is not None and (trial or self.state == "half_open"):
            self._opened_at = None
            self._failures.clear()
            self._moved("closed")
        elif self._opened_at is None:
            self._failures.clear()

    def failure(self, err: LlmError, trial: bool = False) -> None:
        """Record a failure; retryable ones count towards opening."""
        if not err.retryable:
            self.success(trial)  # the provider answered: it is up
            return
        now = self._clock()
        if trial or self.state == "half_open":
            self._set_open()
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window:
            self._failures.popleft()
        if len(self._failures) >= self.failure_threshold and self._opened_at is None:
            self._set_open()

    def release(self, trial: bool) -> None:
        """The call ended without an answer either way (cancelled): free the trial slot."""
        if trial:
            self._trial_in_flight = False

    def snapshot(self) -> dict[str, Any]:
        """JSON-compatible state (``/health/ready``)."""
        return {
            "state": self.state,
            "open_for_s": round(self.remaining, 1),
            "recent_failures": len(self._failures),
        }


class BreakerBoard:
    """The breakers of one process, one per ``provider/model``, created on first use."""

    def __init__(
        self,
        *,
        failure_threshold: int = FAILURE_THRESHOLD,
        window: float = WINDOW,
        open_for: float = OPEN_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.window = window
        self.open_for = open_for
        self._clock = clock
        self.breakers: dict[str, CircuitBreaker] = {}

    def get(self, provider: str, model: str) -> CircuitBreaker:
        """The breaker of ``provider/model``."""
        key = f"{provider}/{model}"
        found = self.breakers.get(key)
        if found is None:
            found = self.breakers[key] = CircuitBreaker(
                failure_threshold=self.failure_threshold,
                window=self.window,
                open_for=self.open_for,
                clock=self._clock,
                name=key,
                on_transition=_report,
            )
            metrics.BREAKER_STATE.labels(provider, model).set(0)
        return found

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every breaker's state by ``provider/model``."""
        return {key: breaker.snapshot() for key, breaker in sorted(self.breakers.items())}

    @property
    def degraded(self) -> bool:
        """Some circuit is not closed."""
        return any(b.state != "closed" for b in self.breakers.values())


def _report(breaker: CircuitBreaker, state: State) -> None:
    provider, _, model = breaker.name.partition("/")
    metrics.breaker_transition(provider, model, state)
    log = _log.warning if state == "open" else _log.info
    log("circuit breaker " + state.replace("_", "-"), provider=provider, model=model, open_for_s=breaker.open_for)


class BreakerProvider:
    """Wraps a provider with a circuit breaker per model; waits out an open circuit."""

    def __init__(
        self,
        inner: LlmProvider,
        breaker: CircuitBreaker | None = None,
        *,
        board: BreakerBoard | None = None,
        max_wait: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.board = board or BreakerBoard()
        self._fixed = breaker
        self.breaker = breaker or self.board.get(inner.name, inner.model)
        self.max_wait = max_wait
        self._sleep = sleep
        self.name = inner.name
        self.model = inner.model

    def breaker_for(self, request: CompletionRequest) -> CircuitBreaker:
        """The breaker of the model this request goes to."""
        if self._fixed is not None:
            return self._fixed
        return self.board.get(self.inner.name, request.model or self.inner.model)

    async def _acquire(self, breaker: CircuitBreaker) -> bool:
        """Pass the breaker, waiting out an open circuit up to ``max_wait``; a wait of a
        second or more is told to :data:`~ecl.llm.ratelimit.on_wait` (``circuit open``), and
        so is the end of it."""
        waited, told, notify = 0.0, False, on_wait.get()
        while True:
            try:
                trial = breaker.acquire()
            except CircuitOpenError as err:
                provider, _, model = breaker.name.partition("/")
                metrics.breaker_refused(provider or self.name, model or self.model)
                wait = max(err.retry_after or 0.0, 0.05)
                if waited + wait > self.max_wait:
                    raise
                _log.warning("llm call waits for the circuit breaker", breaker=breaker.name, wait_s=round(wait, 2))
                if notify is not None and wait >= 1.0:
                    await notify(CIRCUIT_OPEN, wait, breaker.name)
                    told = True
                await self._sleep(wait)
                waited += wait
                continue
            if told and notify is not None:
                await notify("", 0.0, breaker.name)
            return trial

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Call through the breaker."""
        breaker = self.breaker_for(request)
        trial = await self._acquire(breaker)
        try:
            response = await self.inner.complete(request)
        except LlmError as err:
            if err.retryable:
                provider, _, model = breaker.name.partition("/")
                metrics.breaker_failure(provider or self.name, model or self.model)
            breaker.failure(err, trial)
            raise
        except BaseException:
            breaker.release(trial)
            raise
        breaker.success(trial)
        return response

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream through the breaker."""
        breaker = self.breaker_for(request)
        trial = await self._acquire(breaker)
        try:
            async for event in self.inner.stream(request):
                yield event
        except LlmError as err:
            breaker.failure(err, trial)
            raise
        except BaseException:
            breaker.release(trial)
            raise
        breaker.success(trial)

    async def close(self) -> None:
        """Close the wrapped provider's HTTP client, if it has one."""
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            await closer()
