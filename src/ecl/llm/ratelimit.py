"""Rate limits toward providers: token buckets per provider and model, shared by every
workflow of the process.

Each configured model (``llm.rate_limits.<model>``, ``"*"`` for every other model) gets a
requests-per-minute bucket and a tokens-per-minute bucket. A bucket holds at most one
second's worth (``limit / 60``, at least 1) and refills continuously (monotonic clock) at
``(limit - capacity) / 60`` a second, so no 60-second window holds more than the limit and
no burst more than a second's worth. A request takes one
request and its estimated tokens (input estimate + ``max_tokens``); the estimate is
corrected by the usage of the answer.

The provider's word is taken too: a 429 with ``retry-after`` pauses every caller of that
model until then (not only the request that got it), and Anthropic's
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining`` headers of
an answer lower a bucket to what the provider says is left (``0`` with ``-reset``: paused
until the reset). A caller that waits says so: a log line (``llm call waits for the rate
limit``) and :data:`on_wait`, which the step layer turns into a progress event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

import structlog

from ecl.core.errors import LlmError
from ecl.llm.prices import estimate_input_tokens
from ecl.llm.provider import CompletionRequest, CompletionResponse, LlmProvider, StreamEvent

__all__ = ["RateLimit", "RateLimitBoard", "RateLimitedProvider", "TokenBucket", "on_wait"]

_log = structlog.get_logger("ecl.llm.ratelimit")

on_wait: ContextVar[Callable[[str, float, str], Awaitable[None]] | None] = ContextVar("ecl_llm_on_wait", default=None)
"""Called ``(why, seconds, limiter)`` before a call of this context waits for capacity
(``limiter`` is ``provider/model``), and ``("", 0.0, limiter)`` when, after such a wait, it goes on."""


@dataclass(frozen=True)
class RateLimit:
    """Limits of one model; ``None``: no limit of that kind."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


class TokenBucket:
    """A bucket of ``rate`` units per second holding at most ``capacity``."""

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = max(1.0, per_minute / 60.0)
        # A full bucket plus 60 s of refill never exceeds the limit in any 60-second window.
        self.rate = max(per_minute - self.capacity, per_minute / 60.0) / 60.0
        self._clock = clock
        self.level = self.capacity
        self._at = clock()
        self.paused_until = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._at) * self.rate)
        self._at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0: take it now with :meth:`take`)."""
        self._refill()
        pause = max(0.0, self.paused_until - self._clock())
        need = min(amount, self.capacity)  # a request larger than the bucket waits for a full one
        short = max(0.0, need - self.level)
        return max(pause, short / self.rate if self.rate > 0 else 0.0)

    def take(self, amount: float) -> None:
        """Take ``amount`` (the level may go below zero for a request larger than the bucket)."""
        self._refill()
        self.level -= amount

    def give(self, amount: float) -> None:
        """Give back what an estimate took too much of."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)

    def lower_to(self, remaining: float) -> None:
        """The provider says only ``remaining`` is left."""
        self._refill()
        self.level = min(self.level, remaining)

    def pause(self, seconds: float) -> None:
        """Nothing is taken for ``seconds``."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)


class _Limiter:
    def __init__(self, name: str, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.name = name
        self.requests = TokenBucket(limit.requests_per_minute, clock=clock) if limit.requests_per_minute else None
        self.tokens = TokenBucket(limit.tokens_per_minute, clock=clock) if limit.tokens_per_minute else None
        self.paused = TokenBucket(1.0, clock=clock)  # only its pause is used (unlimited models too)
        self.lock = asyncio.Lock()
        self.waits = 0

    def wait_for(self, tokens: int) -> tuple[float, str]:
        waits = [(self.paused.wait_for(0), "retry-after")]
        if self.requests is not None:
            waits.append((self.requests.wait_for(1), "requests per minute"))
        if self.tokens is not None:
            waits.append((self.tokens.wait_for(tokens), "tokens per minute"))
        return max(waits)

    def take(self, tokens: int) -> None:
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)


class RateLimitBoard:
    """Every limiter of the process, one per ``provider/model`` (created on first use)."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = dict(limits or {})
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[str, _Limiter] = {}

    def limiter(self, provider: str, model: str) -> _Limiter:
        """The limiter of ``provider/model`` (``limits[model]``, else ``limits["*"]``)."""
        key = f"{provider}/{model}"
        found = self._limiters.get(key)
        if found is None:
            limit = self.limits.get(model) or self.limits.get("*") or RateLimit()
            found = self._limiters[key] = _Limiter(key, limit, self._clock)
        return found

    async def acquire(self, provider: str, model: str, tokens: int) -> None:
        """Wait until one request of ``tokens`` may go, then take it (first come, first served)."""
        limiter = self.limiter(provider, model)
        notify, told = on_wait.get(), False
        async with limiter.lock:
            while True:
                wait, why = limiter.wait_for(tokens)
                if wait <= 0:
                    limiter.take(tokens)
                    break
                limiter.waits += 1
                if wait >= 1.0:  # short waits are pacing, not news
                    _log.warning(
                        "llm call waits for the rate limit", limiter=limiter.name, why=why, wait_s=round(wait, 2)
                    )
                    if notify is not None:
                        await notify(why, wait, limiter.name)
                        told = True
                await self._sleep(wait)
        if told and notify is not None:
            await notify("", 0.0, limiter.name)

    def settle(self, provider: str, model: str, estimated: int, used: int) -> None:
        """Correct the token bucket with what the call really used."""
        limiter = self.limiter(provider, model)
        if limiter.tokens is not None and used < estimated:
            limiter.tokens.give(estimated - used)
        elif limiter.tokens is not None and used > estimated:
            limiter.tokens.take(used - estimated)

    def retry_after(self, provider: str, model: str, seconds: float) -> None:
        """A 429 asked every caller of this model to wait ``seconds``."""
        self.limiter(provider, model).paused.pause(seconds)

    def adapt(self, provider: str, model: str, headers: Mapping[str, str]) -> None:
        """Lower the buckets to what ``anthropic-ratelimit-*`` headers say is left."""
        if not headers:
            return
        limiter = self.limiter(provider, model)
        lowered = {k.lower(): v for k, v in headers.items()}
        for kind, bucket in (("requests", limiter.requests), ("tokens", limiter.tokens)):
            names = [kind] if kind == "requests" else ["tokens", "input-tokens", "output-tokens"]
            for name in names:
                remaining = _number(lowered.get(f"anthropic-ratelimit-{name}-remaining"))
                if remaining is None:
                    continue
                if bucket is not None:
                    bucket.lower_to(remaining)
                if remaining <= 0:
                    reset = _seconds_until(lowered.get(f"anthropic-ratelimit-{name}-reset"))
                    if reset:
                        limiter.paused.pause(reset)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _seconds_until(raw: str | None) -> float | None:
    """Seconds from now to an RFC 3339 time (``anthropic-ratelimit-*-reset``)."""
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, at.timestamp() - time.time())


class RateLimitedProvider:
    """Takes capacity from the board before each request; feeds back headers and 429s."""

    def __init__(self, inner: LlmProvider, board: RateLimitBoard) -> None:
        self.inner = inner
        self.board = board
        self.name = inner.name
        self.model = inner.model

    async def _acquire(self, request: CompletionRequest) -> tuple[str, int]:
        model = request.model or self.inner.model
        estimate = estimate_input_tokens(request) + request.max_tokens
        await self.board.acquire(self.name, model, estimate)
        return model, estimate

    def _failed(self, model: str, err: LlmError) -> None:
        if err.kind == "rate_limited" and err.retry_after:
            self.board.retry_after(self.name, model, err.retry_after)

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One request within the limits."""
        model, estimate = await self._acquire(request)
        try:
            response = await self.inner.complete(request)
        except LlmError as err:
            self._failed(model, err)
            raise
        self.board.settle(self.name, model, estimate, response.usage.input + response.usage.output)
        self.board.adapt(self.name, model, response.rate_limit_headers)
        return response

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """One streamed request within the limits."""
        model, estimate = await self._acquire(request)
        try:
            async for event in self.inner.stream(request):
                if event.final is not None:
                    usage = event.final.usage
                    self.board.settle(self.name, model, estimate, usage.input + usage.output)
                yield event
        except LlmError as err:
            self._failed(model, err)
            raise

    async def close(self) -> None:
        """Close the wrapped provider's HTTP client, if it has one."""
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            await closer()
