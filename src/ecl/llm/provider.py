"""The LLM provider protocol and its request / response types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ecl.core.metadata import TokenUsage

__all__ = [
    "CompletionRequest",
    "CompletionResponse",
    "LlmProvider",
    "Message",
    "StopReason",
    "StreamEvent",
]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "other"]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    content: str


class CompletionRequest(BaseModel):
    """What a step asks of an LLM."""

    model_config = ConfigDict(frozen=True)

    messages: list[Message]
    system_prompt: str | None = None
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stop_sequences: list[str] = Field(default_factory=list)
    model: str | None = None
    """Overrides the provider's configured model for this request."""

    @classmethod
    def of(cls, prompt: str, *, system: str | None = None, max_tokens: int = 1024) -> CompletionRequest:
        """A single-user-message request."""
        return cls(
            messages=[Message(role="user", content=prompt)],
            system_prompt=system,
            max_tokens=max_tokens,
        )


class CompletionResponse(BaseModel):
    """What the LLM answered, with usage and timing."""

    content: str
    usage: TokenUsage = Field(default_factory=TokenUsage)
    stop_reason: StopReason = "end_turn"
    model: str = ""
    latency_ms: float = 0.0


class StreamEvent(BaseModel):
    """One piece of a streamed completion: text deltas, then a final event with the response."""

    text: str = ""
    final: CompletionResponse | None = None


@runtime_checkable
class LlmProvider(Protocol):
    """A source of completions. Raise :class:`~ecl.core.errors.LlmError` on failure."""

    name: str
    model: str

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One request, one response."""
        ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Text deltas as they arrive; the last event carries the whole response."""
        ...
