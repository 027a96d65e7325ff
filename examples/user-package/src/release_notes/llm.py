"""The package's own LLM provider, ``canned`` (the ``ecl.providers`` entry point).

No network and no key: it answers a summarise prompt with a canned line, so the package's
workflows run offline (``ecl run release-notes --llm canned``). ECL records its calls like
any provider's (``llm_calls.provider = 'canned'``) and wraps it in its retry policy and
circuit breaker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ecl.core import TokenUsage
from ecl.llm import CompletionRequest, CompletionResponse, LlmProvider, ProviderOptions, StreamEvent


class CannedProvider:
    """Answers ``Change: X`` with ``Noted: X.``; any other prompt with ``Noted.``."""

    name = "canned"

    def __init__(self, model: str) -> None:
        self.model = model

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The canned line for the request's last message."""
        prompt = request.messages[-1].content
        change = prompt.rsplit("Change: ", 1)[1].strip() if "Change: " in prompt else ""
        text = f"Noted: {change}." if change else "Noted."
        return CompletionResponse(
            content=text,
            usage=TokenUsage(input=max(1, len(prompt) // 4), output=max(1, len(text) // 4)),
            model=request.model or self.model,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """The whole answer as one delta, then the final event."""
        response = await self.complete(request)
        yield StreamEvent(text=response.content)
        yield StreamEvent(final=response)

    async def close(self) -> None:
        """Nothing to close."""


def build(options: ProviderOptions) -> LlmProvider:
    """The entry point's factory: ECL calls it with the ``llm`` settings."""
    return CannedProvider(model=options.model)
