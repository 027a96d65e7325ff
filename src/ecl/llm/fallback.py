"""Model fallback: when a model's circuit is open or its retries are spent on a retryable
failure, the next model of the chain answers instead.

The chain of a request is its ``model`` (default: the provider's) followed by
``request.fallback`` (default: ``llm.fallback``), e.g. ``claude-sonnet-4-6 ->
claude-haiku-4-5``. A model whose circuit is open is skipped at once, without a request,
unless it is the last of the chain; a model that is not the last does not wait for an open
circuit either (it falls back). A non-retryable failure (bad request, auth) is not the
model's health and goes up as it is. The model that answered is the response's ``model``:
the step records it in ``llm_calls.model`` and its journaled result, so a replay never asks
again, let alone another model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

import structlog

from ecl.core.errors import ConfigError, LlmError
from ecl.llm.breaker import BreakerBoard
from ecl.llm.prices import PriceTable
from ecl.llm.provider import CompletionRequest, CompletionResponse, LlmProvider, StreamEvent

__all__ = ["FallbackProvider", "parse_chain", "require_priced"]

_log = structlog.get_logger("ecl.llm.fallback")


def parse_chain(value: str | Iterable[str]) -> list[str]:
    """Model names from ``"a -> b"``, ``"a, b"`` (or ``→``) or a list; blanks dropped."""
    if isinstance(value, str):
        parts = value.replace("→", ",").replace("->", ",").split(",")
    else:
        parts = [str(part) for part in value]
    return [part.strip() for part in parts if part.strip()]


def require_priced(table: PriceTable, provider: str, models: Iterable[str], *, key: str) -> None:
    """A :class:`ConfigError` (one line, naming ``key`` and the model) for a fallback model
    that has no price (the caller skips this when ``llm.allow_unpriced``)."""
    for model in models:
        if table.find(provider, model) is None:
            raise ConfigError(
                f"{key}: fallback model {model!r} has no price for {provider}; add it under "
                f"[llm.prices.{model!r}] or set llm.allow_unpriced = true",
                key=key,
                value=model,
            )


class FallbackProvider:
    """Tries the models of a request's chain in order (see the module doc).

    ``first`` serves every model but the last of a chain (it must not wait for an open
    circuit: :class:`~ecl.llm.RetryingProvider` with ``wait_for_circuit=False``), ``last``
    the last one (it waits as configured). Both usually wrap the same client.
    """

    def __init__(
        self,
        first: LlmProvider,
        last: LlmProvider,
        *,
        board: BreakerBoard | None = None,
        chain: Sequence[str] = (),
    ) -> None:
        self.first = first
        self.last = last
        self.board = board
        self.chain = list(chain)
        self.name = last.name
        self.model = last.model

    def models(self, request: CompletionRequest) -> list[str]:
        """The request's chain: its model, then its fallbacks (each once)."""
        chain: list[str] = []
        for model in [request.model or self.model, *(request.fallback or self.chain)]:
            if model not in chain:
                chain.append(model)
        return chain

    def _skip(self, model: str) -> bool:
        return self.board is not None and self.board.get(self.name, model).state == "open"

    def _fell_back(self, model: str, to: str, reason: str) -> None:
        _log.warning("llm call falls back to another model", model=model, fallback=to, reason=reason)

    def _routes(self, request: CompletionRequest) -> Iterator[tuple[CompletionRequest, LlmProvider, str | None]]:
        """Each model of the chain still worth asking: the request routed to it, the stack
        that asks it, and the model to fall back to (``None`` for the last one)."""
        chain = self.models(request)
        for i, model in enumerate(chain):
            fallback = chain[i + 1] if i + 1 < len(chain) else None
            if fallback is not None and self._skip(model):
                self._fell_back(model, fallback, "circuit open")
                continue
            routed = request.model_copy(update={"model": model, "fallback": []})
            yield routed, (self.first if fallback is not None else self.last), fallback

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The first model of the chain that answers."""
        for routed, provider, fallback in self._routes(request):
            try:
                return await provider.complete(routed)
            except LlmError as err:
                if fallback is None or not err.retryable:
                    raise
                self._fell_back(routed.model or "", fallback, err.message)
        raise AssertionError("unreachable: the last model either answers or raises")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream from the first model that answers (never after text went out)."""
        for routed, provider, fallback in self._routes(request):
            started = False
            try:
                async for event in provider.stream(routed):
                    started = True
                    yield event
                return
            except LlmError as err:
                if fallback is None or started or not err.retryable:
                    raise
                self._fell_back(routed.model or "", fallback, err.message)

    async def close(self) -> None:
        """Close the wrapped client (shared by both stacks)."""
        closer = getattr(self.last, "close", None)
        if closer is not None:
            await closer()
