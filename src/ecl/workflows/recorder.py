"""Where workflow-level records go (state changes), on top of step records."""

from __future__ import annotations

from typing import Any, Protocol

from ecl.core.state import WorkflowState
from ecl.steps.recorder import NullRecorder, StepRecorder

__all__ = ["NullWorkflowRecorder", "WorkflowRecorder"]


class WorkflowRecorder(StepRecorder, Protocol):
    """Step records plus workflow state changes. Engines make these replay-safe."""

    async def workflow_state(
        self,
        workflow_id: str,
        state: WorkflowState,
        *,
        output: Any = None,
        error: Any = None,
        revision_count: int | None = None,
    ) -> None:
        """Record a state change of the workflow."""
        ...


class NullWorkflowRecorder(NullRecorder):
    """Records nothing."""

    async def workflow_state(
        self,
        workflow_id: str,
        state: WorkflowState,
        *,
        output: Any = None,
        error: Any = None,
        revision_count: int | None = None,
    ) -> None:
        """Nothing."""
