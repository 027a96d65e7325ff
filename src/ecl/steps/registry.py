"""Looking steps up by id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecl.core.errors import NotFoundError
from ecl.steps.step import Step

__all__ = ["StepRegistry"]


class StepRegistry:
    """Step instances by their ``id``."""

    def __init__(self, steps: list[Step[Any, Any]] | None = None) -> None:
        self._steps: dict[str, Step[Any, Any]] = {}
        for step in steps or []:
            self.register(step)

    def register(self, step: Step[Any, Any]) -> None:
        """Add a step (replacing one with the same id)."""
        self._steps[step.id] = step

    def get(self, step_id: str) -> Step[Any, Any]:
        """The step, or :class:`NotFoundError`."""
        try:
            return self._steps[step_id]
        except KeyError:
            known = ", ".join(sorted(self._steps)) or "none"
            raise NotFoundError(f"unknown step {step_id!r} (known: {known})", kind="step", id=step_id) from None

    def ids(self) -> list[str]:
        """Registered ids, sorted."""
        return sorted(self._steps)

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._steps

    def __iter__(self) -> Iterator[Step[Any, Any]]:
        return iter(self._steps.values())
