"""LLM providers by name: the built-ins plus the ``ecl.providers`` entry points.

A package offers a provider without any edit inside ECL::

    # pyproject.toml of the package
    [project.entry-points."ecl.providers"]
    echo = "mypkg.llm:build"

    # mypkg/llm.py
    def build(options: ecl.llm.ProviderOptions) -> LlmProvider:
        return EchoProvider(model=options.model)

``llm.provider = "echo"`` (or ``--llm echo``) then selects it; every name the CLI and the
configuration accept comes from here. ECL wraps an entry point's provider in the same retry
policy and circuit breaker as its own remote providers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points

from pydantic import SecretStr

from ecl.core.errors import ConfigError
from ecl.llm.provider import LlmProvider

__all__ = ["PROVIDERS_GROUP", "ProviderFactory", "ProviderOptions", "provider_factory", "provider_names"]

PROVIDERS_GROUP = "ecl.providers"
"""The entry-point group of LLM providers."""


@dataclass(frozen=True)
class ProviderOptions:
    """What a provider factory receives (from the ``llm`` settings)."""

    model: str
    api_key: SecretStr | None = None
    base_url: str | None = None
    timeout: float = 120.0
    max_tokens: int = 2048
    extra: dict[str, str] = field(default_factory=dict)


ProviderFactory = Callable[[ProviderOptions], LlmProvider]
"""Builds a provider from options (what an ``ecl.providers`` entry point names)."""


def _remote(module: str, cls: str) -> ProviderFactory:
    """The factory of a remote provider class (``anthropic``, ``openai``): one constructor
    signature; the class is imported when the first provider is built."""

    def build(options: ProviderOptions) -> LlmProvider:
        provider: LlmProvider = getattr(import_module(module), cls)(
            options.api_key,
            options.model,
            base_url=options.base_url,
            timeout=options.timeout,
            max_tokens=options.max_tokens,
        )
        return provider

    return build


def _mock(options: ProviderOptions) -> LlmProvider:
    from ecl.llm.mock import MockLlmProvider, scripted_workflow_responder

    return MockLlmProvider(responder=scripted_workflow_responder, model="mock-model")


BUILTIN: dict[str, tuple[ProviderFactory, bool]] = {
    "anthropic": (_remote("ecl.llm.anthropic", "AnthropicProvider"), True),
    "openai": (_remote("ecl.llm.openai_compat", "OpenAICompatibleProvider"), True),
    "mock": (_mock, False),
}
"""Built-in providers: factory and whether it is wrapped in retries and a circuit breaker."""


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=PROVIDERS_GROUP)}


def provider_names() -> list[str]:
    """Every provider name: the built-ins, then installed entry points (sorted)."""
    extra = sorted(name for name in _entry_points() if name not in BUILTIN)
    return [*BUILTIN, *extra]


def provider_factory(name: str) -> tuple[ProviderFactory, bool]:
    """The factory of ``name`` and whether ECL wraps it (retries, breaker); a
    :class:`ConfigError` naming the known providers when there is none."""
    if name in BUILTIN:
        return BUILTIN[name]
    found = _entry_points().get(name)
    if found is None:
        raise ConfigError(
            f"llm.provider = {name!r}: expected one of {', '.join(provider_names())}",
            key="llm.provider",
            value=name,
        )
    source = f"entry point {name} ({found.value})"
    try:
        factory = found.load()
    except Exception as exc:  # any failure of the package's module: one line, never a traceback
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(
            f"LLM provider {name!r}: {source} failed to import: {type(exc).__name__}"
            + (f": {detail}" if detail else ""),
            key="llm.provider",
            value=name,
            source=source,
        ) from exc
    if not callable(factory):
        raise ConfigError(
            f"LLM provider {name!r}: the entry point must name a factory (options) -> LlmProvider",
            key="llm.provider",
            value=name,
        )
    return factory, True
