"""The LLM provider protocol and its request / response types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ecl.core.metadata import TokenUsage

__all__ = [
    "CompletionRequest",
    "CompletionResponse",
    "LlmProvider",
    "Message",
    "StopReason",
    "StreamEvent",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "other"]


class ToolSpec(BaseModel):
    """A tool the model may call: a name, what it does, and a JSON schema of its input."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str
    input_schema: dict[str, Any]


class ToolCall(BaseModel):
    """The model asks for a tool to be run (an Anthropic ``tool_use`` block, an OpenAI function call)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResult(BaseModel):
    """The answer to one :class:`ToolCall`, sent back in the next user message."""

    model_config = ConfigDict(frozen=True)

    tool_call_id: str
    content: str
    is_error: bool = False


class Message(BaseModel):
    """One chat message.

    An assistant message that called tools carries them in ``tool_calls``; the user message
    after it answers them in ``tool_results`` (``content`` may then be empty).
    """

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    content: str
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    cache_prefix: int = Field(default=0, ge=0)
    """Leading characters of ``content`` that repeat across calls (instructions, a code
    chunk): a prompt-cache breakpoint goes after them (Anthropic ``cache_control``)."""


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
    tools: list[ToolSpec] = Field(default_factory=list)
    """Tools the model may call; a reply that calls them has ``stop_reason == "tool_use"``."""
    cache_system: bool = False
    """Mark the system prompt for the provider's prompt cache (Anthropic ``cache_control``)."""
    fallback: list[str] = Field(default_factory=list)
    """Models to try in order when ``model`` cannot answer (open circuit, retries spent on a
    retryable failure); empty: ``llm.fallback`` (:mod:`ecl.llm.fallback`)."""

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
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """Tools the model asked to run (with ``stop_reason == "tool_use"``)."""
    model: str = ""
    latency_ms: float = 0.0
    rate_limit_headers: dict[str, str] = Field(default_factory=dict, exclude=True)
    """The provider's ``anthropic-ratelimit-*`` response headers (:mod:`ecl.llm.ratelimit`)."""


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
