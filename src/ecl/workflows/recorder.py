"""Where workflow-level records go (state changes), on top of step records."""

from __future__ import annotations

from typing import Protocol

from ecl.core.records import StateChange
from ecl.steps.recorder import NullRecorder, StepRecorder

__all__ = ["NullWorkflowRecorder", "WorkflowRecorder"]


class WorkflowRecorder(StepRecorder, Protocol):
    """Step records plus workflow state changes. Engines make these replay-safe."""

    async def workflow_state(self, change: StateChange) -> None:
        """Record a state change of the workflow."""
        ...


class NullWorkflowRecorder(NullRecorder):
    """Records nothing."""

    async def workflow_state(self, change: StateChange) -> None:
        """Nothing."""
