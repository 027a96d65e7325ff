"""What LLM calls cost: a price table per provider and model, in exact decimals.

The shipped table (``prices.toml``, package data) holds list prices in USD per million
tokens for input, output, prompt-cache writes and prompt-cache reads. Configuration
(``llm.prices``) overrides or adds models; ``"*"`` in the shipped table prices every model
of a provider that has no entry of its own (OpenAI-compatible servers: 0).

Money is :class:`~decimal.Decimal` end to end (never a float), so a workflow's spend equals
the sum of its recorded calls to the last digit.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

from ecl.core.errors import ConfigError
from ecl.core.metadata import TokenUsage
from ecl.llm.provider import CompletionRequest

__all__ = ["PRICE_FIELDS", "Price", "PriceTable", "estimate_input_tokens"]

PRICE_FIELDS = ("input", "output", "cache_write", "cache_read")
"""The four prices of a model, USD per million tokens."""

_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of one model."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, key: str) -> Price:
        """From a mapping of the four fields; a missing, negative or non-numeric one is a
        :class:`ConfigError` naming ``key.field``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{key}: expected a table of {', '.join(PRICE_FIELDS)}", key=key, value=data)
        unknown = sorted(set(data) - set(PRICE_FIELDS))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown price field", key=f"{key}.{unknown[0]}", value=None)
        values: dict[str, Decimal] = {}
        for name in PRICE_FIELDS:
            if name not in data:
                raise ConfigError(f"{key}.{name}: missing (USD per million tokens)", key=f"{key}.{name}", value=None)
            raw = data[name]
            try:
                if isinstance(raw, bool):
                    raise InvalidOperation
                value = Decimal(str(raw))
            except (InvalidOperation, ValueError):
                raise ConfigError(f"{key}.{name} = {raw!r}: not a number", key=f"{key}.{name}", value=raw) from None
            if not value.is_finite() or value < 0:
                raise ConfigError(f"{key}.{name} = {raw!r}: must be a number >= 0", key=f"{key}.{name}", value=str(raw))
            values[name] = value
        return cls(**values)

    def cost(self, usage: TokenUsage) -> Decimal:
        """The exact cost of ``usage``."""
        total = (
            usage.input * self.input
            + usage.output * self.output
            + usage.cache_creation * self.cache_write
            + usage.cache_read * self.cache_read
        )
        return total / _MILLION

    def worst_case(self, input_tokens: int, max_tokens: int) -> Decimal:
        """The most a call can cost: every input token written to the cache (the dearest
        input price) and ``max_tokens`` of output."""
        dearest = max(self.input, self.cache_write)
        return (input_tokens * dearest + max_tokens * self.output) / _MILLION

    def as_dict(self) -> dict[str, str]:
        """JSON-compatible form (strings keep the decimals exact)."""
        return {name: str(getattr(self, name)) for name in PRICE_FIELDS}


def estimate_input_tokens(request: CompletionRequest) -> int:
    """A generous estimate of a request's input tokens, without asking the provider.

    One token per three UTF-8 bytes of the system prompt and messages, rounded up, plus a
    few per message for the chat framing: more than Claude's tokenizer produces for prose
    and code, so the budget check errs on the side of refusing.
    """
    size = len((request.system_prompt or "").encode())
    size += sum(len(m.content.encode()) for m in request.messages)
    return math.ceil(size / 3) + 8 * (len(request.messages) + 1)


class PriceTable:
    """Prices by provider and model, with configured overrides on top of the shipped table."""

    def __init__(
        self,
        shipped: Mapping[tuple[str, str], Price],
        overrides: Mapping[str, Price] | None = None,
    ) -> None:
        self._shipped = dict(shipped)
        self._overrides = dict(overrides or {})

    @classmethod
    def shipped(cls, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PriceTable:
        """The package's table, with ``overrides`` (``{model: {input, output, cache_write,
        cache_read}}``, from ``llm.prices``) on top."""
        raw = tomllib.loads(resources.files("ecl.llm").joinpath("prices.toml").read_text(encoding="utf-8"))
        table = {
            (provider, model): Price.parse(fields, key=f"prices.toml {provider}.{model}")
            for provider, models in raw.items()
            for model, fields in models.items()
        }
        parsed = {model: Price.parse(fields, key=f"llm.prices.{model}") for model, fields in (overrides or {}).items()}
        return cls(table, parsed)

    def find(self, provider: str, model: str) -> Price | None:
        """The price of ``model`` served by ``provider``, or ``None`` when unpriced."""
        if model in self._overrides:
            return self._overrides[model]
        return self._shipped.get((provider, model)) or self._shipped.get((provider, "*"))

    def require(self, provider: str, model: str, *, key: str = "llm.model") -> Price:
        """The price, or a :class:`ConfigError` naming the model."""
        price = self.find(provider, model)
        if price is None:
            raise ConfigError(
                f"{key} = {model!r}: no price for this {provider} model; add it under [llm.prices.{model!r}] "
                "(input, output, cache_write, cache_read in USD per million tokens) or set llm.allow_unpriced = true",
                key=key,
                value=model,
            )
        return price

    def cost(self, provider: str, model: str, usage: TokenUsage) -> Decimal:
        """The exact cost of ``usage`` (0 for an unpriced model)."""
        price = self.find(provider, model)
        return Decimal(0) if price is None else price.cost(usage)

    def models(self) -> dict[str, dict[str, str]]:
        """Every priced model as ``{"provider/model": prices}`` (overrides as ``"*/model"``)."""
        found = {f"{p}/{m}": price.as_dict() for (p, m), price in sorted(self._shipped.items())}
        found.update({f"*/{m}": price.as_dict() for m, price in sorted(self._overrides.items())})
        return found
