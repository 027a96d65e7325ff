"""A scripted LLM for tests and for running workflows without an API key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence

from ecl.core.errors import LlmError
from ecl.core.metadata import TokenUsage
from ecl.llm.provider import CompletionRequest, CompletionResponse, StreamEvent

__all__ = ["MockLlmProvider", "scripted_workflow_responder"]

Reply = str | CompletionResponse | LlmError


class MockLlmProvider:
    """Canned replies in order, cycling when exhausted; records every request.

    A reply may be text, a full :class:`CompletionResponse`, or an :class:`LlmError` to
    raise. With ``responder`` the reply is computed from the request instead.
    """

    name = "mock"

    def __init__(
        self,
        responses: Sequence[Reply] = (),
        *,
        responder: Callable[[CompletionRequest], Reply] | None = None,
        model: str = "mock-model",
        delay: float = 0.0,
    ) -> None:
        if not responses and responder is None:
            raise ValueError("MockLlmProvider needs responses or a responder")
        self._responses = list(responses)
        self._responder = responder
        self._next = 0
        self.model = model
        self.delay = delay
        self.requests: list[CompletionRequest] = []

    def _reply(self, request: CompletionRequest) -> Reply:
        if self._responder is not None:
            return self._responder(request)
        reply = self._responses[self._next % len(self._responses)]
        self._next += 1
        return reply

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        """The next canned reply."""
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self._reply(request)
        if isinstance(reply, LlmError):
            raise reply
        if isinstance(reply, CompletionResponse):
            return reply
        prompt = sum(len(m.content) for m in request.messages) + len(request.system_prompt or "")
        return CompletionResponse(
            content=reply,
            usage=TokenUsage(input=max(1, prompt // 4), output=max(1, len(reply) // 4)),
            stop_reason="end_turn",
            model=request.model or self.model,
            latency_ms=self.delay * 1000,
        )

    async def close(self) -> None:
        """Nothing to close."""

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """The next canned reply, in word-sized deltas."""
        response = await self.complete(request)
        words = response.content.split(" ")
        for i, word in enumerate(words):
            yield StreamEvent(text=word if i == 0 else " " + word)
        yield StreamEvent(final=response)


def scripted_workflow_responder(request: CompletionRequest) -> str:
    """Deterministic replies good enough to run Critique-Revise end to end without a key.

    Critique prompts (they ask for JSON) get a passing verdict; everything else gets a
    short draft built from the prompt's last line.
    """
    text = "\n".join(m.content for m in request.messages)
    system = request.system_prompt or ""
    if '"decision"' in text or '"decision"' in system:
        return json.dumps(
            {
                "critique": "Clear, accurate and well organised; no changes needed.",
                "decision": "pass",
                "feedback": None,
            }
        )
    subject = text.strip().splitlines()[-1][:200] if text.strip() else "the topic"
    if "feedback" in text.lower():
        return f"Revised draft. {subject}\n\nThis version addresses the feedback."
    return (
        f"Draft. {subject}\n\nDurable execution keeps completed work safe across crashes, "
        "so expensive steps are never paid for twice."
    )
