"""Builds the configured provider by name (from :mod:`ecl.llm.registry`): fallback chain →
retry → circuit breaker (per model) → rate limits (per model) → provider.

The breaker sits inside the retry loop, so it counts every failed HTTP request, and a retry
that meets an open circuit waits for it rather than spending an attempt."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import SecretStr

from ecl.core.policy import RetryPolicy
from ecl.llm.breaker import BreakerBoard, BreakerProvider
from ecl.llm.fallback import FallbackProvider
from ecl.llm.provider import LlmProvider
from ecl.llm.ratelimit import RateLimitBoard, RateLimitedProvider
from ecl.llm.registry import ProviderOptions, provider_factory
from ecl.llm.retry import RetryingProvider

__all__ = ["build_provider"]


def build_provider(
    provider: str,
    *,
    model: str,
    api_key: SecretStr | str | None = None,
    base_url: str | None = None,
    timeout: float = 120.0,
    max_tokens: int = 2048,
    retry: RetryPolicy | None = None,
    breaker: bool = True,
    breakers: BreakerBoard | None = None,
    breaker_max_wait: float = 300.0,
    fallback: Sequence[str] = (),
    rate_limits: RateLimitBoard | None = None,
) -> LlmProvider:
    """A ready provider by name (see :mod:`ecl.llm.registry`). ``mock`` needs no key: it
    answers Critique-Revise deterministically. ``fallback``: models tried after ``model``
    (:mod:`ecl.llm.fallback`); a request's own ``fallback`` replaces it. ``rate_limits``: the
    process's token buckets (:mod:`ecl.llm.ratelimit`; default: none, only ``retry-after``)."""
    factory, wrap = provider_factory(provider)
    inner = factory(
        ProviderOptions(
            model=model,
            api_key=SecretStr(api_key) if isinstance(api_key, str) else api_key,
            base_url=base_url,
            timeout=timeout,
            max_tokens=max_tokens,
        )
    )
    if not wrap:
        return inner
    inner = RateLimitedProvider(inner, rate_limits or RateLimitBoard())
    policy = retry or RetryPolicy()
    if not breaker:
        plain = RetryingProvider(inner, policy)
        return FallbackProvider(plain, plain, chain=fallback)
    board = breakers or BreakerBoard()
    # A model with a fallback after it does not wait for its open circuit; the last one does.
    first = RetryingProvider(BreakerProvider(inner, board=board, max_wait=0.0), policy, wait_for_circuit=False)
    last = RetryingProvider(BreakerProvider(inner, board=board, max_wait=breaker_max_wait), policy)
    return FallbackProvider(first, last, board=board, chain=fallback)
