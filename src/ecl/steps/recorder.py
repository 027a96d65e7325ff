"""Where step executions and LLM calls are recorded."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from ecl.core.metadata import TokenUsage

__all__ = ["NullRecorder", "StepRecorder"]


class StepRecorder(Protocol):
    """Receives one row per step attempt and one per LLM call."""

    async def step_started(
        self,
        *,
        workflow_id: str,
        step_id: str,
        attempt: int,
        iteration: int,
        input: Any,
    ) -> str:
        """Record a started attempt; returns its execution id."""
        ...

    async def step_finished(
        self,
        execution_id: str,
        *,
        state: str,
        output: Any = None,
        error: Any = None,
        tokens: TokenUsage | int | None = None,
    ) -> None:
        """Record how an attempt ended (``completed`` or ``failed``)."""
        ...

    async def llm_call(
        self,
        *,
        workflow_id: str,
        execution_id: str | None,
        provider: str,
        model: str,
        usage: TokenUsage,
        latency_ms: float,
        outcome: str,
        error_kind: str | None = None,
    ) -> None:
        """Record one LLM request."""
        ...


class NullRecorder:
    """Records nothing (tests, dry runs)."""

    async def step_started(
        self,
        *,
        workflow_id: str,
        step_id: str,
        attempt: int,
        iteration: int,
        input: Any,
    ) -> str:
        """A fresh id."""
        return uuid.uuid4().hex

    async def step_finished(
        self,
        execution_id: str,
        *,
        state: str,
        output: Any = None,
        error: Any = None,
        tokens: TokenUsage | int | None = None,
    ) -> None:
        """Nothing."""

    async def llm_call(
        self,
        *,
        workflow_id: str,
        execution_id: str | None,
        provider: str,
        model: str,
        usage: TokenUsage,
        latency_ms: float,
        outcome: str,
        error_kind: str | None = None,
    ) -> None:
        """Nothing."""
