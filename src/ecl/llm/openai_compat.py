"""Any OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenRouter) via the ``openai`` SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
from pydantic import SecretStr

from ecl.core.errors import LlmError
from ecl.core.metadata import TokenUsage
from ecl.llm.errors import error_for_status
from ecl.llm.provider import CompletionRequest, CompletionResponse, Message, StopReason, StreamEvent, ToolCall

__all__ = ["OpenAICompatibleProvider"]

_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}


def _translate(exc: Exception) -> LlmError:
    if isinstance(exc, TimeoutError):  # the whole-request bound (llm.timeout_seconds)
        return LlmError("openai: request timed out", kind="timeout", retryable=True)
    if isinstance(exc, openai.APITimeoutError):
        return LlmError("openai: request timed out", kind="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LlmError("openai: connection failed", kind="connection", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return error_for_status("openai", exc.status_code, exc.message, dict(exc.response.headers))
    if isinstance(exc, httpx.TransportError):
        return LlmError("openai: connection failed", kind="connection", retryable=True)
    return LlmError(f"openai: {type(exc).__name__}: {exc}", kind="server", retryable=False)


def _messages(message: Message) -> list[dict[str, Any]]:
    """One message in the Chat Completions form; tool results become ``tool`` messages."""
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": r.tool_call_id, "content": r.content} for r in message.tool_results
    ]
    if message.tool_calls:
        out.append(
            {
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.input)}}
                    for c in message.tool_calls
                ],
            }
        )
    elif message.content or not message.tool_results:
        out.append({"role": message.role, "content": message.content})
    return out


def _tool_calls(raw: Any) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for call in raw or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {"_unparsed": call.function.arguments}
        calls.append(
            ToolCall(
                id=str(call.id), name=str(call.function.name), input=arguments if isinstance(arguments, dict) else {}
            )
        )
    return calls


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
        self.timeout = timeout
        """Seconds one request may take, start to end (``llm.timeout_seconds``)."""
        self.max_tokens = max_tokens
        self._client = openai.AsyncOpenAI(
            api_key=key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if request.system_prompt:
            messages.append({"role": "system", "content": request.system_prompt})
        for message in request.messages:
            messages += _messages(message)
        params: dict[str, Any] = {
            "model": request.model or self.model,
            "max_tokens": request.max_tokens or self.max_tokens,
            "messages": messages,
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.stop_sequences:
            params["stop"] = request.stop_sequences
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in request.tools
            ]
        return params

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One chat completion."""
        started = time.perf_counter()
        try:
            # The SDK's timeout bounds each read; this bounds the whole request (monotonic).
            async with asyncio.timeout(self.timeout):
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
            tool_calls=_tool_calls(choice.message.tool_calls),
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
