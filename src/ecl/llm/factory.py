"""Builds the configured provider: retry → circuit breaker (per model) → provider.

The breaker sits inside the retry loop, so it counts every failed HTTP request, and a retry
that meets an open circuit waits for it rather than spending an attempt."""

from __future__ import annotations

from pydantic import SecretStr

from ecl.core.errors import ConfigError
from ecl.core.policy import RetryPolicy
from ecl.llm.breaker import BreakerBoard, BreakerProvider
from ecl.llm.mock import MockLlmProvider, scripted_workflow_responder
from ecl.llm.provider import LlmProvider
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
    """A ready provider. ``mock`` needs no key: it answers Critique-Revise deterministically."""
    inner: LlmProvider
    if provider == "mock":
        inner = MockLlmProvider(responder=scripted_workflow_responder, model="mock-model")
        return inner
    if provider == "anthropic":
        from ecl.llm.anthropic import AnthropicProvider

        inner = AnthropicProvider(api_key, model, base_url=base_url, timeout=timeout, max_tokens=max_tokens)
    elif provider == "openai":
        from ecl.llm.openai_compat import OpenAICompatibleProvider

        inner = OpenAICompatibleProvider(api_key, model, base_url=base_url, timeout=timeout, max_tokens=max_tokens)
    else:
        raise ConfigError(
            f"llm.provider = {provider!r}: expected anthropic, openai or mock",
            key="llm.provider",
            value=provider,
        )
    if breaker:
        inner = BreakerProvider(inner, board=breakers or BreakerBoard(), max_wait=breaker_max_wait)
    return RetryingProvider(inner, retry or RetryPolicy())
