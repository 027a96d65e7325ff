"""LLM providers: the protocol, the registry, Anthropic, OpenAI-compatible, mock, retry, circuit breaker."""

from typing import TYPE_CHECKING, Any

from ecl.llm.breaker import BreakerBoard, BreakerProvider, CircuitBreaker, CircuitOpenError
from ecl.llm.errors import RETRYABLE_KINDS, error_for_status, parse_retry_after
from ecl.llm.factory import build_provider
from ecl.llm.fallback import FallbackProvider
from ecl.llm.mock import MockLlmProvider, scripted_workflow_responder
from ecl.llm.prices import Price, PriceTable
from ecl.llm.provider import (
    CompletionRequest,
    CompletionResponse,
    LlmProvider,
    Message,
    StopReason,
    StreamEvent,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from ecl.llm.registry import PROVIDERS_GROUP, ProviderFactory, ProviderOptions, provider_names
from ecl.llm.retry import RetryingProvider

if TYPE_CHECKING:
    from ecl.llm.anthropic import AnthropicProvider
    from ecl.llm.openai_compat import OpenAICompatibleProvider


def __getattr__(name: str) -> Any:
    # The SDKs take a second or more to import: load them only when used.
    if name == "AnthropicProvider":
        from ecl.llm.anthropic import AnthropicProvider

        return AnthropicProvider
    if name == "OpenAICompatibleProvider":
        from ecl.llm.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider
    raise AttributeError(name)


__all__ = [
    "PROVIDERS_GROUP",
    "RETRYABLE_KINDS",
    "AnthropicProvider",
    "BreakerBoard",
    "BreakerProvider",
    "CircuitBreaker",
    "CircuitOpenError",
    "CompletionRequest",
    "CompletionResponse",
    "FallbackProvider",
    "LlmProvider",
    "Message",
    "MockLlmProvider",
    "OpenAICompatibleProvider",
    "Price",
    "PriceTable",
    "ProviderFactory",
    "ProviderOptions",
    "RetryingProvider",
    "StopReason",
    "StreamEvent",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "build_provider",
    "error_for_status",
    "parse_retry_after",
    "provider_names",
    "scripted_workflow_responder",
]
