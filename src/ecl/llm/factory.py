"""Builds the configured provider by name (from :mod:`ecl.llm.registry`): retry → circuit
breaker (per model) → provider.

The breaker sits inside the retry loop, so it counts every failed HTTP request, and a retry
that meets an open circuit waits for it rather than spending an attempt."""

from __future__ import annotations

from pydantic import SecretStr

from ecl.core.policy import RetryPolicy
from ecl.llm.breaker import BreakerBoard, BreakerProvider
from ecl.llm.provider import LlmProvider
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
) -> LlmProvider:
    """A ready provider by name (see :mod:`ecl.llm.registry`). ``mock`` needs no key: it
    answers Critique-Revise deterministically."""
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
    if breaker:
        inner = BreakerProvider(inner, board=breakers or BreakerBoard(), max_wait=breaker_max_wait)
    return RetryingProvider(inner, retry or RetryPolicy())
