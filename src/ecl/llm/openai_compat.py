"""Any OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenRouter) via the ``openai`` SDK."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from pydantic import SecretStr

from ecl.core.errors import LlmError
from ecl.core.metadata import TokenUsage
from ecl.llm.errors import error_for_status
from ecl.llm.provider import CompletionRequest, CompletionResponse, StopReason, StreamEvent

__all__ = ["OpenAICompatibleProvider"]

_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}


def _translate(exc: Exception) -> LlmError:
    if isinstance(exc, openai.APITimeoutError):
        return LlmError("openai: request timed out", kind="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LlmError("openai: connection failed", kind="connection", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return error_for_status("openai", exc.status_code, exc.message, dict(exc.response.headers))
    if isinstance(exc, httpx.TransportError):
        return LlmError("openai: connection failed", kind="connection", retryable=True)
    return LlmError(f"openai: {type(exc).__name__}: {exc}", kind="server", retryable=False)


class OpenAICompatibleProvider:
    """:class:`~ecl.llm.LlmProvider` over the Chat Completions API."""

    name = "openai"

    def __init__(
        self,
        api_key: SecretStr | str | None,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float = 120.0,
        max_tokens: int = 2048,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.model = model
        self.max_tokens = max_tokens
        self._client = openai.AsyncOpenAI(
            api_key=key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system_prompt:
            messages.append({"role": "system", "content": request.system_prompt})
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        params: dict[str, Any] = {
            "model": request.model or self.model,
            "max_tokens": request.max_tokens or self.max_tokens,
            "messages": messages,
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.stop_sequences:
            params["stop"] = request.stop_sequences
        return params

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One chat completion."""
        started = time.perf_counter()
        try:
            reply = await self._client.chat.completions.create(**self._params(request))
        except Exception as exc:
            raise _translate(exc) from exc
        choice = reply.choices[0]
        usage = reply.usage
        return CompletionResponse(
            content=choice.message.content or "",
            usage=TokenUsage(
                input=usage.prompt_tokens if usage else 0,
                output=usage.completion_tokens if usage else 0,
            ),
            stop_reason=_STOP.get(str(choice.finish_reason), "other"),
            model=reply.model,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Streamed chat completion."""
        started = time.perf_counter()
        parts: list[str] = []
        usage = TokenUsage()
        finish = "other"
        model = request.model or self.model
        try:
            chunks = await self._client.chat.completions.create(
                **self._params(request), stream=True, stream_options={"include_usage": True}
            )
            async for chunk in chunks:
                model = chunk.model or model
                if chunk.usage:
                    usage = TokenUsage(input=chunk.usage.prompt_tokens, output=chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        yield StreamEvent(text=choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except Exception as exc:
            raise _translate(exc) from exc
        yield StreamEvent(
            final=CompletionResponse(
                content="".join(parts),
                usage=usage,
                stop_reason=_STOP.get(finish, "other"),
                model=model,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
