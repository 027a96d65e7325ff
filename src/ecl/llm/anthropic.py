"""Claude through the official ``anthropic`` SDK (its own retries off: ECL's policy is on top)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
from pydantic import SecretStr

from ecl.core.errors import LlmError
from ecl.core.metadata import TokenUsage
from ecl.llm.errors import error_for_status
from ecl.llm.provider import CompletionRequest, CompletionResponse, Message, StopReason, StreamEvent, ToolCall

__all__ = ["AnthropicProvider"]

_STOP: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "refusal": "refusal",
}


def _usage(raw: Any) -> TokenUsage:
    if raw is None:
        return TokenUsage()
    return TokenUsage(
        input=int(getattr(raw, "input_tokens", 0) or 0),
        output=int(getattr(raw, "output_tokens", 0) or 0),
        cache_creation=int(getattr(raw, "cache_creation_input_tokens", 0) or 0),
        cache_read=int(getattr(raw, "cache_read_input_tokens", 0) or 0),
    )


def _translate(exc: Exception) -> LlmError:
    """Every SDK failure as an :class:`LlmError` (never carrying the API key)."""
    if isinstance(exc, TimeoutError):  # the whole-request bound (llm.timeout_seconds)
        return LlmError("anthropic: request timed out", kind="timeout", retryable=True)
    if isinstance(exc, anthropic.APITimeoutError):
        return LlmError("anthropic: request timed out", kind="timeout", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return LlmError(
            f"anthropic: connection failed ({type(exc.__cause__ or exc).__name__})",
            kind="connection",
            retryable=True,
        )
    if isinstance(exc, anthropic.APIStatusError):
        detail = exc.message if isinstance(exc.message, str) else str(exc.body)
        return error_for_status("anthropic", exc.status_code, detail, dict(exc.response.headers))
    if isinstance(exc, httpx.TimeoutException):
        return LlmError("anthropic: request timed out", kind="timeout", retryable=True)
    if isinstance(exc, httpx.TransportError):
        return LlmError(
            f"anthropic: connection failed ({type(exc).__name__})",
            kind="connection",
            retryable=True,
        )
    return LlmError(f"anthropic: {type(exc).__name__}: {exc}", kind="server", retryable=False)


_EPHEMERAL = {"type": "ephemeral"}


def _text_blocks(message: Message) -> list[dict[str, Any]]:
    """The message's text; with ``cache_prefix``, two blocks and a cache breakpoint between them."""
    cut = min(message.cache_prefix, len(message.content))
    if cut <= 0:
        return [{"type": "text", "text": message.content}] if message.content else []
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content[:cut], "cache_control": _EPHEMERAL}]
    if cut < len(message.content):
        blocks.append({"type": "text", "text": message.content[cut:]})
    return blocks


def _text(blocks: Any) -> str:
    return "".join(str(getattr(b, "text", "")) for b in blocks if getattr(b, "type", "") == "text")


def _tool_calls(blocks: Any) -> list[ToolCall]:
    return [
        ToolCall(id=str(b.id), name=str(b.name), input=dict(b.input or {}))
        for b in blocks
        if getattr(b, "type", "") == "tool_use"
    ]


def _message(message: Message) -> dict[str, Any]:
    """A message in the Messages API's form: plain text, or content blocks when tools are involved."""
    if not message.tool_calls and not message.tool_results and message.cache_prefix <= 0:
        return {"role": message.role, "content": message.content}
    blocks: list[dict[str, Any]] = [
        {"type": "tool_result", "tool_use_id": r.tool_call_id, "content": r.content, "is_error": r.is_error}
        for r in message.tool_results
    ]
    blocks += _text_blocks(message)
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in message.tool_calls]
    return {"role": message.role, "content": blocks}


class AnthropicProvider:
    """:class:`~ecl.llm.LlmProvider` for Claude."""

    name = "anthropic"

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
        self._client = anthropic.AsyncAnthropic(
            api_key=key or "missing-api-key",
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
        )

    def _params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model or self.model,
            "max_tokens": request.max_tokens or self.max_tokens,
            "messages": [_message(m) for m in request.messages],
        }
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools
            ]
        if request.system_prompt and request.cache_system:
            params["system"] = [{"type": "text", "text": request.system_prompt, "cache_control": _EPHEMERAL}]
        elif request.system_prompt:
            params["system"] = request.system_prompt
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.stop_sequences:
            params["stop_sequences"] = request.stop_sequences
        return params

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """One Messages API call."""
        started = time.perf_counter()
        try:
            # The SDK's timeout bounds each read; this bounds the whole request (monotonic).
            async with asyncio.timeout(self.timeout):
                raw = await self._client.messages.with_raw_response.create(**self._params(request))
                message = await raw.parse()
            limits = {k.lower(): v for k, v in raw.headers.items() if k.lower().startswith("anthropic-ratelimit-")}
        except Exception as exc:
            raise _translate(exc) from exc
        text = _text(message.content)
        return CompletionResponse(
            content=text,
            usage=_usage(message.usage),
            stop_reason=_STOP.get(str(message.stop_reason), "other"),
            tool_calls=_tool_calls(message.content),
            model=message.model,
            latency_ms=(time.perf_counter() - started) * 1000,
            rate_limit_headers=limits,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Server-sent events: text deltas, then the whole response with usage."""
        started = time.perf_counter()
        try:
            async with self._client.messages.stream(**self._params(request)) as stream:
                async for text in stream.text_stream:
                    yield StreamEvent(text=text)
                message = await stream.get_final_message()
        except LlmError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc
        text = _text(message.content)
        yield StreamEvent(
            final=CompletionResponse(
                content=text,
                usage=_usage(message.usage),
                stop_reason=_STOP.get(str(message.stop_reason), "other"),
                tool_calls=_tool_calls(message.content),
                model=message.model,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
