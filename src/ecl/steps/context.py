"""What a step sees while it runs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opentelemetry.trace import Span

from ecl.artifacts.store import Artifact, ArtifactStore
from ecl.core.errors import LlmError, StepIoError
from ecl.core.ids import new_record_id
from ecl.core.metadata import NO_TOKENS, TokenUsage
from ecl.core.records import INTERRUPTED, PENDING, LlmCall
from ecl.llm.budget import BudgetGuard
from ecl.llm.prices import Price, PriceTable
from ecl.llm.provider import CompletionRequest, CompletionResponse, LlmProvider, StreamEvent
from ecl.llm.ratelimit import on_wait
from ecl.observability import metrics
from ecl.observability.content import content_enabled, kept
from ecl.observability.logging import LazyLogger
from ecl.observability.tracing import end_llm_span, start_llm_span
from ecl.steps.prompts import PromptLibrary
from ecl.steps.recorder import StepRecorder

__all__ = ["RecordingLlm", "StepContext"]


_ZERO = Decimal(0)


class RecordingLlm:
    """Wraps the provider: records every call and adds up the step's tokens and cost."""

    def __init__(
        self,
        inner: LlmProvider,
        recorder: StepRecorder,
        *,
        workflow_id: str,
        execution_id: str,
        prices: PriceTable | None = None,
        budget: BudgetGuard | None = None,
        prompt_cache: bool = True,
        fallback: Sequence[str] = (),
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self._recorder = recorder
        self._workflow_id = workflow_id
        self._execution_id = execution_id
        self._prices = prices
        self._budget = budget
        self._prompt_cache = prompt_cache
        self._fallback = list(fallback) if fallback else []
        self.usage = NO_TOKENS
        self.calls = 0
        self.models: list[str] = []
        """The model that answered each successful call, in order."""
        self.cost = _ZERO
        """What this attempt's calls cost (USD, exact)."""

    def _price(self, model: str) -> Price | None:
        if self._prices is None:
            return None
        # A provider may answer with a dated id of the requested model: try both.
        return self._prices.find(self.inner.name, model) or self._prices.find(self.inner.name, self.model)

    def _cost(self, model: str, usage: TokenUsage) -> Decimal:
        price = self._price(model)
        return Decimal(0) if price is None else price.cost(usage)

    def _prepare(self, request: CompletionRequest) -> CompletionRequest:
        """The request as sent: with the step's fallback models when it names none, unmarked
        for the prompt cache when the step turned it off."""
        if self._fallback and not request.fallback:
            request = request.model_copy(update={"fallback": self._fallback})
        if self._prompt_cache or not (request.cache_system or any(m.cache_prefix for m in request.messages)):
            return request
        messages = [m.model_copy(update={"cache_prefix": 0}) for m in request.messages]
        return request.model_copy(update={"cache_system": False, "messages": messages})

    def _check_budget(self, request: CompletionRequest) -> None:
        if self._budget is not None:
            model = request.model or self.model
            self._budget.check(request, model, self._price(model))

    async def _waiting(self, reason: str, seconds: float, limiter: str) -> None:
        """The call waits for the provider's capacity (``seconds`` > 0), or goes on after such
        a wait: tell the recorder (a progress event; the workflow's ``waiting``)."""
        if seconds > 0:
            tell = getattr(self._recorder, "llm_waiting", None)
            if tell is not None:
                await tell(self._workflow_id, self._execution_id, reason, seconds, model=limiter)
            return
        went_on = getattr(self._recorder, "llm_waited", None)
        if went_on is not None:
            await went_on(self._workflow_id, self._execution_id)

    async def _sent(self, request: CompletionRequest, prompt: str | None) -> str:
        """Record the request as ``pending`` before it goes out; returns the row's id."""
        call_id = new_record_id()
        await self._recorder.llm_call_sent(self._call(request.model or self.model, PENDING, call_id, prompt=prompt))
        return call_id

    def _call(
        self,
        model: str,
        outcome: str,
        call_id: str,
        *,
        usage: TokenUsage | None = None,
        latency_ms: float = 0.0,
        error_kind: str | None = None,
        cost_usd: Decimal = Decimal(0),
        prompt: str | None = None,
        reply: str | None = None,
    ) -> LlmCall:
        """The record of one call of this step attempt."""
        return LlmCall(
            workflow_id=self._workflow_id,
            execution_id=self._execution_id,
            provider=self.inner.name,
            model=model,
            usage=usage or TokenUsage(),
            latency_ms=latency_ms,
            outcome=outcome,
            error_kind=error_kind,
            cost_usd=cost_usd,
            call_id=call_id,
            prompt=prompt,
            reply=reply,
        )

    async def _record(
        self,
        model: str,
        usage: TokenUsage,
        latency_ms: float,
        error: LlmError | None,
        call_id: str = "",
        *,
        prompt: str | None = None,
        reply: str | None = None,
    ) -> None:
        self.calls += 1
        self.usage = self.usage + usage
        cost = self._cost(model, usage)
        self.cost += cost
        if self._budget is not None:
            self._budget.add(cost, usage.total)
        metrics.llm_call(
            self.inner.name,
            model,
            outcome="error" if error else "ok",
            error_kind=error.kind if error else None,
            latency_s=latency_ms / 1000,
            tokens={
                "input": usage.input,
                "output": usage.output,
                "cache_creation": usage.cache_creation,
                "cache_read": usage.cache_read,
            },
            cost_usd=cost,
        )
        await self._recorder.llm_call(
            self._call(
                model,
                "error" if error else "ok",
                call_id,
                usage=usage,
                latency_ms=latency_ms,
                error_kind=error.kind if error else None,
                cost_usd=cost,
                prompt=prompt,
                reply=reply,
            )
        )

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """Call the provider and record the call (not sent if it could cross the budget)."""
        request = self._prepare(request)
        self._check_budget(request)
        prompt = _prompt(request) if content_enabled() else None
        call_id = await self._sent(request, prompt)
        started = time.perf_counter()
        span = start_llm_span(self.inner.name, request.model or self.model)
        if prompt is not None:
            _prompt_on_span(span, request)
        token = on_wait.set(self._waiting)
        try:
            response = await self.inner.complete(request)
        except asyncio.CancelledError:
            end_llm_span(span, error="cancelled")
            # Cut short (the step's timeout, a cancellation): the provider may bill it, its
            # tokens are unknown; settled now rather than left pending.
            latency_ms = (time.perf_counter() - started) * 1000
            await self._recorder.llm_call(
                self._call(request.model or self.model, INTERRUPTED, call_id, latency_ms=latency_ms, prompt=prompt)
            )
            raise
        except LlmError as err:
            end_llm_span(span, error=err.kind)
            await self._record(
                request.model or self.model,
                TokenUsage(),
                (time.perf_counter() - started) * 1000,
                err,
                call_id,
                prompt=prompt,
            )
            raise
        finally:
            on_wait.reset(token)
        reply = _reply(response, span) if prompt is not None else None
        _end_span(span, response)
        await self._record(
            response.model or self.model,
            response.usage,
            response.latency_ms,
            None,
            call_id,
            prompt=prompt,
            reply=reply,
        )
        self.models.append(response.model or request.model or self.model)
        return response

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream from the provider and record the call when it ends."""
        request = self._prepare(request)
        self._check_budget(request)
        prompt = _prompt(request) if content_enabled() else None
        call_id = await self._sent(request, prompt)
        started = time.perf_counter()
        span = start_llm_span(self.inner.name, request.model or self.model)
        if prompt is not None:
            _prompt_on_span(span, request)
        try:
            async for event in self.inner.stream(request):
                if event.final is not None:
                    reply = _reply(event.final, span) if prompt is not None else None
                    _end_span(span, event.final)
                    self.models.append(event.final.model or request.model or self.model)
                    await self._record(
                        event.final.model or self.model,
                        event.final.usage,
                        event.final.latency_ms,
                        None,
                        call_id,
                        prompt=prompt,
                        reply=reply,
                    )
                yield event
        except LlmError as err:
            end_llm_span(span, error=err.kind)
            await self._record(
                request.model or self.model,
                TokenUsage(),
                (time.perf_counter() - started) * 1000,
                err,
                call_id,
                prompt=prompt,
            )
            raise
        finally:
            end_llm_span(span, error="interrupted")  # cut short (a no-op when it ended above)


def _prompt(request: CompletionRequest) -> str:
    """The request as kept with ``observability.capture_content``: each message under its role."""
    parts = [f"[system]\n{request.system_prompt}"] if request.system_prompt else []
    for message in request.messages:
        text = message.content
        if message.tool_results:
            text += "".join(f"\n(tool result {r.tool_call_id}) {r.content}" for r in message.tool_results)
        parts.append(f"[{message.role}]\n{text}")
    return kept("\n\n".join(parts))


def _text_part(text: str) -> dict[str, str]:
    return {"type": "text", "content": kept(text)}


def _prompt_on_span(span: Span, request: CompletionRequest) -> None:
    """The prompt on the LLM span, as the GenAI semantic conventions put it."""
    if not span.is_recording():
        return
    if request.system_prompt:
        span.set_attribute("gen_ai.system_instructions", json.dumps([_text_part(request.system_prompt)]))
    messages = [{"role": m.role, "parts": [_text_part(m.content)]} for m in request.messages]
    span.set_attribute("gen_ai.input.messages", json.dumps(messages))


def _reply(response: CompletionResponse, span: Span) -> str:
    """The reply as kept (and on the span, per the GenAI semantic conventions)."""
    text = response.content
    if response.tool_calls:
        text += "".join(f"\n(tool call {c.name}) {json.dumps(c.input)}" for c in response.tool_calls)
    if span.is_recording():
        output = [{"role": "assistant", "parts": [_text_part(text)], "finish_reason": response.stop_reason}]
        span.set_attribute("gen_ai.output.messages", json.dumps(output))
    return kept(text)


def _end_span(span: Span, response: CompletionResponse) -> None:
    """End an LLM call's span with the model that answered and its tokens (input: cache included)."""
    usage = response.usage
    end_llm_span(
        span,
        response_model=response.model,
        input_tokens=usage.input + usage.cache_creation + usage.cache_read,
        output_tokens=usage.output,
    )


@dataclass
class StepContext:
    """The LLM, identity, logger, prompts and artifact storage of one step attempt."""

    llm: RecordingLlm
    workflow_id: str
    step_id: str
    attempt: int
    execution_id: str
    iteration: int = 0
    artifacts: ArtifactStore | None = None
    prompts: PromptLibrary = field(default_factory=PromptLibrary)
    logger: Any = None

    def __post_init__(self) -> None:
        if self.logger is None:
            self.logger = LazyLogger(
                "ecl.step", workflow_id=self.workflow_id, step_id=self.step_id, attempt=self.attempt
            )

    def _store(self) -> ArtifactStore:
        if self.artifacts is None:
            raise StepIoError(
                "no artifact store is configured for this run",
                step_id=self.step_id,
                retryable=False,
            )
        return self.artifacts

    async def store_artifact(self, name: str, content: bytes, content_type: str) -> Artifact:
        """Store a (large) result; returns its metadata (keep the id in the step output)."""
        return await self._store().store(self.workflow_id, self.step_id, name, content, content_type)

    async def retrieve_artifact(self, artifact_id: str) -> bytes:
        """Read an artifact of this workflow back."""
        return await self._store().retrieve(self.workflow_id, artifact_id)
