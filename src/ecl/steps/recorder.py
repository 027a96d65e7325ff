"""Where step executions and LLM calls are recorded."""

from __future__ import annotations

import uuid
from typing import Protocol

from ecl.core.records import LlmCall, StepFinished, StepStarted

__all__ = ["NullRecorder", "StepRecorder"]


class StepRecorder(Protocol):
    """Receives one row per step attempt and one per LLM call."""

    async def step_started(self, step: StepStarted) -> str:
        """Record a started attempt; returns its execution id."""
        ...

    async def step_finished(self, execution_id: str, result: StepFinished) -> None:
        """Record how an attempt ended (``completed`` or ``failed``)."""
        ...

    async def llm_call_sent(self, call: LlmCall) -> None:
        """Record a request about to be sent (outcome ``pending``), durably, before it goes out."""
        ...

    async def llm_call(self, call: LlmCall) -> None:
        """Record how one LLM request ended (settles the pending row of ``call.call_id``)."""
        ...


class NullRecorder:
    """Records nothing (tests, dry runs)."""

    async def step_started(self, step: StepStarted) -> str:
        """A fresh id."""
        return uuid.uuid4().hex

    async def step_finished(self, execution_id: str, result: StepFinished) -> None:
        """Nothing."""

    async def llm_call_sent(self, call: LlmCall) -> None:
        """Nothing."""

    async def llm_call(self, call: LlmCall) -> None:
        """Nothing."""
